"""The ``ogproxy`` command: a thin layer over the Python API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from . import __version__
from .accesslog import configure as configure_logging
from .browser import preflight
from .cli_build import render, templates, warm
from .cli_cache import cache
from .cli_options import (
    asset_origins_option,
    cache_dir_option,
    card_options,
    card_params,
    chromium_option,
    fonts_dir_option,
    secret_for_signing,
    settings_or_exit,
    signing_options,
    store_option,
    templates_dir_option,
)
from .config import (
    DEFAULT_DEV_SECRET_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_RENDER_TIMEOUT,
    parse_size,
    split_secrets,
)
from .errors import ConfigError
from .meta import meta_tags
from .objectstore import check_store
from .params import ENDPOINTS, Output
from .signing import sign_url


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ogproxy")
def main() -> None:
    """ogproxy: signed Open Graph image URLs, rendered once with Chromium, cached on disk."""


@main.command()
@cache_dir_option
@store_option
@chromium_option
@templates_dir_option
@fonts_dir_option
@asset_origins_option
@click.option(
    "--host",
    envvar="OGPROXY_HOST",
    default=DEFAULT_HOST,
    show_envvar=True,
    help="Interface to listen on.",
)
@click.option(
    "--port",
    envvar="OGPROXY_PORT",
    default=DEFAULT_PORT,
    type=int,
    show_envvar=True,
    help="Port to listen on.",
)
@click.option(
    "--cache-size",
    envvar="OGPROXY_CACHE_SIZE",
    default="1GiB",
    show_envvar=True,
    help="Disk cache size limit (e.g. 1GiB, 500MB).",
)
@click.option(
    "--memory-cache",
    envvar="OGPROXY_MEMORY_CACHE",
    default="64MiB",
    show_envvar=True,
    help="Hot PNGs kept in memory.",
)
@click.option(
    "--secret",
    envvar="OGPROXY_SECRET",
    default=None,
    show_envvar=True,
    show_default=False,
    help="Signing secret(s), comma-separated: the last signs, all verify.",
)
@click.option(
    "--dev",
    envvar="OGPROXY_DEV",
    is_flag=True,
    show_envvar=True,
    help="Development mode: generate and keep a local secret if none is given.",
)
@click.option(
    "--dev-secret-file",
    envvar="OGPROXY_DEV_SECRET_FILE",
    default=DEFAULT_DEV_SECRET_FILE,
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
    help="Where --dev keeps its generated secret.",
)
@click.option(
    "--pages",
    envvar="OGPROXY_PAGES",
    default=None,
    type=int,
    show_envvar=True,
    help="Concurrent renders (browser pages). Default: two per core.",
)
@click.option(
    "--browsers",
    envvar="OGPROXY_BROWSERS",
    default=None,
    type=int,
    show_envvar=True,
    help="Chromium processes the pages are spread over. Default: up to two.",
)
@click.option(
    "--queue",
    envvar="OGPROXY_QUEUE",
    default=64,
    type=int,
    show_envvar=True,
    help="Renders that may wait for a page; beyond it new misses get 503 + Retry-After.",
)
@click.option(
    "--png-palette/--no-png-palette",
    envvar="OGPROXY_PNG_PALETTE",
    default=False,
    show_envvar=True,
    help="Default to 256-colour PNGs (URLs can still choose with palette=0/1).",
)
@click.option(
    "--render-timeout",
    envvar="OGPROXY_RENDER_TIMEOUT",
    default=DEFAULT_RENDER_TIMEOUT,
    type=float,
    show_envvar=True,
    help="Seconds before a render is cut off.",
)
@click.option(
    "--api-keys",
    envvar="OGPROXY_API_KEYS",
    default="",
    show_envvar=True,
    show_default=False,
    help="Comma-separated keys for POST /v1/og-image (x-api-key); unset disables it.",
)
@click.option(
    "--admin-token",
    envvar="OGPROXY_ADMIN_TOKEN",
    default=None,
    show_envvar=True,
    show_default=False,
    help="Turns on the playground at / in production (open it as /?token=...).",
)
@click.option(
    "--public-url",
    envvar="OGPROXY_PUBLIC_URL",
    default=None,
    show_envvar=True,
    help="The image endpoint as your pages see it, e.g. https://og.example.com/og.png.",
)
@click.option(
    "--workers",
    envvar="OGPROXY_WORKERS",
    default=1,
    type=click.IntRange(1, 64),
    show_envvar=True,
    help="Worker processes sharing the port and the cache dir, each with its own browser.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="OGPROXY_ACCESS_LOG",
    default=True,
    show_envvar=True,
    help="One JSON line per request on stderr (never the query string).",
)
@click.option(
    "--log-level",
    envvar="OGPROXY_LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    show_envvar=True,
)
def serve(
    host: str,
    port: int,
    cache_dir: Path,
    store: str | None,
    cache_size: str,
    memory_cache: str,
    secret: str | None,
    dev: bool,
    dev_secret_file: Path,
    chromium: str | None,
    pages: int | None,
    browsers: int | None,
    queue: int,
    png_palette: bool,
    render_timeout: float,
    templates_dir: Path | None,
    fonts_dir: Path | None,
    asset_origins: str,
    api_keys: str,
    admin_token: str | None,
    public_url: str | None,
    workers: int,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve signed image URLs over HTTP."""
    import uvicorn

    from .app import create_app

    try:
        values: dict[str, object] = {
            "host": host,
            "port": port,
            "cache_dir": cache_dir,
            "dev": dev,
            "cache_size": parse_size(cache_size, "OGPROXY_CACHE_SIZE"),
            "memory_cache": parse_size(memory_cache, "OGPROXY_MEMORY_CACHE"),
            "secrets": split_secrets(secret or ""),
            "dev_secret_file": dev_secret_file,
            "chromium": chromium,
            "render_timeout": render_timeout,
            "png_palette": png_palette,
            "queue": queue,
            "fonts_dir": fonts_dir,
            "asset_origins": split_secrets(asset_origins),
            "api_keys": split_secrets(api_keys),
            "admin_token": admin_token or None,
            "public_url": public_url or None,
            "store": store or None,
        }
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    cores = os.cpu_count() or 1
    # Several workers share the cores: by default each gets one browser and its share of pages.
    values["pages"] = pages if pages is not None else max(1, 2 * cores // workers)
    if browsers is not None:
        values["browsers"] = browsers
    elif workers > 1:
        values["browsers"] = 1
    if templates_dir is not None:
        values["templates_dir"] = templates_dir
    settings = settings_or_exit(**values)
    configure_logging(log_level, access_log)
    try:
        preflight(settings.chromium)
        if settings.store:
            check_store(settings.store)
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "server_header": False,
        "access_log": False,  # ogproxy logs each request itself, without the query
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker builds the same settings from the environment (the dev secret is made
    # once, here, so that every worker verifies with it).
    os.environ.update(settings.to_env())
    os.environ.update(OGPROXY_LOG_LEVEL=log_level, OGPROXY_ACCESS_LOG="1" if access_log else "0")
    uvicorn.run("ogproxy.app:app_from_env", factory=True, workers=workers, **options)


@main.command()
@card_options
@signing_options
@click.option("--alt", default=None, help="og:image:alt text (default: the title).")
def meta(
    title: str | None,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
    base_url: str,
    secret: str | None,
    dev: bool,
    dev_secret_file: Path,
    alt: str | None,
) -> None:
    """Print the <meta> tags (og:image, twitter:image, size) for a signed card."""
    params = card_params(title, subtitle, template, accent_color, extra)
    url = sign_url(base_url, secret_for_signing(secret, dev, dev_secret_file), params)
    width = int(params.get("width") or 1200) * int(params.get("scale") or 1)
    height = int(params.get("height") or 630) * int(params.get("scale") or 1)
    fmt = ENDPOINTS.get("/" + urlsplit(base_url).path.rsplit("/", 1)[-1], "png")
    click.echo(meta_tags(url, Output(width=width, height=height, format=fmt), alt=alt or title))


@main.command()
@card_options
@signing_options
def sign(
    title: str | None,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
    base_url: str,
    secret: str | None,
    dev: bool,
    dev_secret_file: Path,
) -> None:
    """Print a signed image URL."""
    click.echo(
        sign_url(
            base_url,
            secret_for_signing(secret, dev, dev_secret_file),
            card_params(title, subtitle, template, accent_color, extra),
        )
    )


for command in (render, warm, templates, cache):
    main.add_command(command)

if __name__ == "__main__":
    main()
