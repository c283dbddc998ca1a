"""Options and helpers shared by the ``ogproxy`` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import jinja2
from ogproxy_sign import to_pairs

from .browser import preflight
from .config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_DEV_SECRET_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    TEMPLATES_DIR,
    Settings,
    dev_secret,
    split_secrets,
)
from .errors import ConfigError, InvalidParam
from .params import ENDPOINTS, Output, parse_card
from .signing import DEFAULT_PATH
from .templates import TemplateSet

DEFAULT_BASE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/og.png"


F = TypeVar("F", bound=Callable[..., Any])


def env_option(*decls: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that can also be set by ``OGPROXY_<env>``."""
    return click.option(*decls, envvar=f"OGPROXY_{env}", show_envvar=True, **kwargs)


_folder = click.Path(file_okay=False, exists=True, path_type=Path)
# Options that serve, render, templates and cache share.
cache_dir_option = env_option(
    "--cache-dir",
    env="CACHE_DIR",
    default=DEFAULT_CACHE_DIR,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the persistent render cache (render reuses what serve rendered).",
)
templates_dir_option = env_option(
    "--templates-dir",
    env="TEMPLATES_DIR",
    default=None,
    type=_folder,
    help="Your templates, searched before the built-in ones.",
)
fonts_dir_option = env_option(
    "--fonts-dir",
    env="FONTS_DIR",
    default=None,
    type=_folder,
    help="Folder of extra fonts (woff2, woff, ttf, otf) usable by family name.",
)
asset_origins_option = env_option(
    "--asset-origins",
    env="ASSET_ORIGINS",
    default="",
    help="Comma-separated origins (https://host) that avatar/logo URLs may be fetched from.",
)
chromium_option = env_option(
    "--chromium",
    env="CHROMIUM",
    default=None,
    help="Chromium binary (default: Playwright's, else the system's).",
)


def settings_or_exit(**values: object) -> Settings:
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def card_options(func: Any) -> Any:
    """--title, --subtitle, --template, --accent-color, --param: the card's parameters."""
    for option in reversed(
        [
            click.option("--title", help="Card title."),
            click.option("--subtitle", default=None, help="Card subtitle."),
            click.option(
                "--template", default=None, help="Template name (default, minimal, gradient)."
            ),
            click.option("--accent-color", default=None, help="Accent colour, #rgb or #rrggbb."),
            click.option(
                "--param",
                "extra",
                multiple=True,
                metavar="NAME=VALUE",
                help="Any other parameter (repeatable), e.g. author=Ann, width=800.",
            ),
        ]
    ):
        func = option(func)
    return func


def signing_options(func: Any) -> Any:
    """--base-url, --secret, --dev, --dev-secret-file: how a URL is signed."""
    for option in reversed(
        [
            click.option(
                "--base-url",
                envvar="OGPROXY_BASE_URL",
                default=DEFAULT_BASE_URL,
                show_envvar=True,
                help="Public URL of the image endpoint.",
            ),
            click.option(
                "--secret",
                envvar="OGPROXY_SECRET",
                default=None,
                show_envvar=True,
                show_default=False,
                help="Signing secret(s); the last one signs.",
            ),
            click.option(
                "--dev", is_flag=True, help="Sign with the local secret that `serve --dev` keeps."
            ),
            click.option(
                "--dev-secret-file",
                envvar="OGPROXY_DEV_SECRET_FILE",
                default=DEFAULT_DEV_SECRET_FILE,
                show_envvar=True,
                type=click.Path(dir_okay=False, path_type=Path),
            ),
        ]
    ):
        func = option(func)
    return func


def preflight_or_exit(chromium: str | None) -> None:
    try:
        preflight(chromium)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def card_params(
    title: str | None,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
) -> dict[str, str | None]:
    if not title:
        raise click.UsageError("--title is required")
    params: dict[str, str | None] = {
        "title": title,
        "subtitle": subtitle,
        "template": template,
        "accentColor": accent_color,
    }
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        params[name] = value
    return params


class InvalidInput(click.ClickException):
    """Input the server would refuse: one line on stderr, exit code 2 (as for bad usage)."""

    exit_code = 2


def secret_for_signing(secret: str | None, dev: bool, dev_secret_file: Path) -> str:
    if secret:
        secrets = split_secrets(secret)
        try:  # the server's own rules for a secret
            Settings(secrets=secrets)
        except ConfigError as exc:
            raise InvalidInput(str(exc)) from None
        return secrets[-1]
    if dev:
        return dev_secret(dev_secret_file)
    raise click.UsageError("no secret: set OGPROXY_SECRET (or --secret), or pass --dev")


def checked_card(
    params: dict[str, str | None], base_url: str, templates_dir: Path | None
) -> Output:
    """What the server will make of a URL signed with ``params`` at ``base_url``.

    The server's own parser checks the parameters against the templates it would load,
    so a URL the server would answer with a 400 is never printed (InvalidInput instead).
    """
    path = urlsplit(base_url).path
    endpoint = "/" + path.rsplit("/", 1)[-1] if path not in ("", "/") else DEFAULT_PATH
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"--base-url: must end in one of {', '.join(ENDPOINTS)}")
    builtin = (TEMPLATES_DIR,)
    try:
        templates = TemplateSet(*((templates_dir, *builtin) if templates_dir else builtin))
    except (ValueError, OSError, jinja2.TemplateError) as exc:
        raise click.ClickException(f"templates: {exc}") from None
    try:
        _, output = parse_card(
            to_pairs(params), templates.specs, Output(format=ENDPOINTS[endpoint])
        )
    except InvalidParam as exc:
        raise InvalidInput(exc.public_message) from None
    except ValueError as exc:  # e.g. a parameter named sig
        raise InvalidInput(str(exc)) from None
    return output
