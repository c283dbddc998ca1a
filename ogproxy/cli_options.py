"""Options and helpers shared by the ``ogproxy`` commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import jinja2
from ogproxy_sign import to_pairs

from .config import (
    DEFAULT_DEV_SECRET_FILE,
    Declared,
    Settings,
    declarations,
    dev_secret,
    kept_dev_secret,
    template_dirs,
)
from .errors import ConfigError, InvalidParam, QueryTooLong
from .formats import ENDPOINTS
from .origins import AllowList, parse_origin
from .params import MAX_QUERY_BYTES, Output, image_names, parse_card
from .secretrules import check_secrets
from .signing import DEFAULT_PATH
from .templates import TemplateSet

F = TypeVar("F", bound=Callable[..., Any])


class _SettingType(click.ParamType):  # type: ignore[type-arg]
    """A flag's or variable's text read by the setting's own parser."""

    def __init__(self, declared: Declared) -> None:
        self.declared = declared
        self.name = declared.kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        with config_errors():  # a bad setting is a configuration error (exit 1), not usage
            parsed = self.declared.parse(value)
            self.declared.check(parsed)
        return parsed


def setting_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The click option of a ``Settings`` field, with its variable, help and default text.

    It is None when neither the flag nor the variable is given, so the declared default
    applies (``settings_or_exit`` leaves it out). ``aliases``: other flags for it.
    """
    declared = {d.name: d for d in declarations()}[name]
    flag = declared.flag
    if declared.kind == "bool":
        flag = f"{flag}/--no-{flag[2:]}"
    flags = (flag, *overrides.pop("aliases", ()))
    options: dict[str, Any] = {
        "envvar": declared.env,
        "show_envvar": True,
        "default": None,
        "show_default": declared.shown.replace("`", "") or False,
        "help": declared.help,
    }
    if declared.kind != "bool":
        options["type"] = _SettingType(declared)
    return click.option(*flags, name, **{**options, **overrides})


def setting_options(*names: str) -> Callable[[F], F]:
    """``setting_option`` for each of ``names``, in that order in ``--help``."""

    def decorate(func: F) -> F:
        for name in reversed(names):
            func = setting_option(name)(func)
        return func

    return decorate


def settings_or_exit(**values: object) -> Settings:
    """Settings from the command's options; an unset option keeps the declared default."""
    with config_errors():
        return Settings(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]


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
    """How ``sign`` and ``meta`` sign a URL, with the settings ``serve`` checks it by:
    the endpoint (--public-url, else --host and --port), --secret or --dev (and
    --dev-secret-file), --templates-dir and --asset-origins."""
    here = "when no --public-url is given"
    options = [
        setting_option(
            "public_url",
            aliases=("--base-url",),  # its name before it was the server's setting
            envvar=["OGPROXY_PUBLIC_URL", "OGPROXY_BASE_URL"],
            show_envvar=True,
            show_default="http://HOST:PORT/og.png, the server's address",
            help="The image endpoint as your pages see it, e.g. https://og.example.com/og.png.",
        ),
        setting_option("host", help=f"The server's address, {here}."),
        setting_option("port", help=f"The server's port, {here}."),
        setting_option("secrets", help="Signing secret(s); the last one signs."),
        setting_option(
            "dev", help="Sign with the local secret that `serve --dev` keeps.", show_default="off"
        ),
        setting_option("dev_secret_file"),
        setting_option("templates_dir"),
        setting_option("asset_origins"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def config_errors() -> Iterator[None]:
    """A ConfigError (it names the setting) as the command's error message, exit status 1;
    problems in the templates (each ``file:line: what``) exit with 2."""
    from .templatecheck import TemplateProblems

    try:
        yield
    except TemplateProblems as exc:
        raise _TemplateProblems(str(exc)) from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class _TemplateProblems(click.ClickException):
    exit_code = 2


def card_params(
    title: str | None,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
) -> dict[str, str | None]:
    """The card's parameters from the flags; a title is required unless ``html`` is given."""
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
    if not title and "html" not in params:
        raise click.UsageError("--title is required (unless --param html=... is given)")
    return params


class InvalidInput(click.ClickException):
    """Input the server would refuse: one line on stderr, exit code 2 (as for bad usage)."""

    exit_code = 2


def secret_for_signing(
    secrets: tuple[str, ...] | None, dev: bool | None, dev_secret_file: Path | None
) -> str:
    if secrets:
        try:  # the server's own rules for a secret
            check_secrets(secrets)
        except ConfigError as exc:
            raise InvalidInput(str(exc)) from None
        return secrets[-1]
    if not dev:
        raise click.UsageError("no secret: set OGPROXY_SECRET (or --secret), or pass --dev")
    path = dev_secret_file or DEFAULT_DEV_SECRET_FILE
    with config_errors():
        secret = kept_dev_secret(path)
        if secret is not None:
            return secret
        secret = dev_secret(path)
    # A dev server keeps its secret in the folder it was started in: one already running
    # elsewhere refuses URLs signed with this new one.
    click.echo(
        f"ogproxy: made a new dev secret in {path.absolute()}: `ogproxy serve --dev` "
        "started in this folder verifies with it; a dev server started elsewhere refuses "
        "these URLs (sign in its folder, or give its --dev-secret-file)",
        err=True,
    )
    return secret


def _base_url_path(base_url: str) -> str:
    """The path of ``--public-url``: an http(s) URL with a host, to which the signed query
    is appended (so it has none of its own); InvalidInput saying what is wrong."""
    try:
        parse_origin(base_url)
    except ValueError as exc:
        raise InvalidInput(f"--public-url: {base_url[:100]!r} {exc}") from None
    if "?" in base_url or "#" in base_url:
        raise InvalidInput(
            "--public-url: must not carry a query or fragment (the signed query is added)"
        )
    return urlsplit(base_url).path


def checked_card(
    params: dict[str, str | None],
    base_url: str,
    templates_dir: Path | None,
    asset_origins: tuple[str, ...] = (),
) -> Output:
    """What the server will make of a URL signed with ``params`` at ``base_url``.

    The server's own parser checks the parameters against the templates it would load,
    and image URLs against the origins it would allow, so a URL the server would answer
    with a 400 is never printed (InvalidInput instead).
    """
    path = _base_url_path(base_url)
    endpoint = "/" + path.rsplit("/", 1)[-1] if path not in ("", "/") else DEFAULT_PATH
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"--public-url: must end in one of {', '.join(ENDPOINTS)}")
    try:
        with config_errors():  # problems in the templates: file:line each, exit 2
            templates = TemplateSet(*template_dirs(templates_dir))
    except (ValueError, OSError, jinja2.TemplateError) as exc:
        raise click.ClickException(f"templates: {exc}") from None
    with config_errors():
        allowed = AllowList(asset_origins)
    try:
        card, output = parse_card(
            to_pairs(params), templates.specs, Output(format=ENDPOINTS[endpoint])
        )
        images = image_names(card, templates.specs[card.template])
        for name, value in card.extra:
            if name in images and value.startswith(("http://", "https://")):
                allowed.check_image(name, value)
    except InvalidParam as exc:
        raise InvalidInput(exc.public_message) from None
    except ValueError as exc:  # e.g. a parameter named sig
        raise InvalidInput(str(exc)) from None
    return output


def checked_url(url: str) -> str:
    """A signed URL whose query the server reads (a longer one is answered 414)."""
    query = urlsplit(url).query
    if len(query) > MAX_QUERY_BYTES:
        raise InvalidInput(
            f"{QueryTooLong.public_message.rstrip('.')}: {len(query)} bytes signed, "
            f"at most {MAX_QUERY_BYTES} allowed (the server answers 414)"
        )
    return url
