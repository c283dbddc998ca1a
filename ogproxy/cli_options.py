"""Options and helpers shared by the ``ogproxy`` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .browser import preflight
from .config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_DEV_SECRET_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Settings,
    dev_secret,
    split_secrets,
)
from .errors import ConfigError

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
store_option = env_option(
    "--store",
    env="STORE",
    default=None,
    help="Shared cache tier on object storage, s3://bucket/prefix (AWS_ENDPOINT_URL, "
    "AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY configure the rest).",
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


def secret_for_signing(secret: str | None, dev: bool, dev_secret_file: Path) -> str:
    if secret:
        return split_secrets(secret)[-1]
    if dev:
        return dev_secret(dev_secret_file)
    raise click.UsageError("no secret: set OGPROXY_SECRET (or --secret), or pass --dev")
