"""The ``ogproxy`` command: a thin layer over the Python API."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any

import click

from . import __version__
from .accesslog import configure as configure_logging
from .cli_build import render, templates, warm
from .cli_cache import cache
from .cli_options import (
    card_options,
    card_params,
    checked_card,
    checked_url,
    config_errors,
    secret_for_signing,
    setting_options,
    settings_or_exit,
    signing_options,
)
from .config import (
    CORES_PER_BROWSER,
    DEFAULT_HOST,
    DEFAULT_PORT,
    SECRET_FILE_SETTINGS,
    cores,
    declarations,
    endpoint_url,
    read_secret_files,
)
from .meta import meta_tags
from .objectstore import check_store
from .params import Output
from .signing import sign_url


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ogproxy")
def main() -> None:
    """ogproxy: signed Open Graph image URLs, rendered once with Chromium, cached on disk."""
    # Before any command reads its options: OGPROXY_SECRET_FILE becomes OGPROXY_SECRET, etc.
    with config_errors():
        env = read_secret_files(os.environ)
    for name in SECRET_FILE_SETTINGS:
        os.environ.pop(f"{name}_FILE", None)
        if name in env:
            os.environ[name] = env[name]


@main.command()
@setting_options(*(d.name for d in declarations()))
def serve(**values: Any) -> None:
    """Serve signed image URLs over HTTP."""
    import uvicorn

    from .app import create_app
    from .protocol import protocol_for

    workers = values["workers"] or 1
    # Several workers share the cores: by default each gets its share of pages and browsers.
    if values["pages"] is None:
        values["pages"] = max(1, 2 * cores() // workers)
    if values["browsers"] is None and workers > 1:
        values["browsers"] = max(1, math.ceil(cores() / workers / CORES_PER_BROWSER))
    settings = settings_or_exit(**values)
    configure_logging(settings.log_level, settings.access_log, settings.log_format)
    with config_errors():
        if settings.store:
            check_store(settings.store)
        app = create_app(settings)
    proxies = "" if settings.trusted_proxies.strip() in ("", "none") else settings.trusted_proxies
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "server_header": False,
        "access_log": False,  # ogproxy logs each request itself, without the query
        "http": protocol_for(settings.head_timeout),  # request heads bounded
        "log_config": None,  # uvicorn logs through ogproxy's handler, in its format
        # uvicorn takes the client address from X-Forwarded-For for these peers only.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker builds the same settings from the environment (the dev secret is made
    # once, here, so that every worker verifies with it).
    os.environ.update(settings.to_env())
    uvicorn.run("ogproxy.app:app_from_env", factory=True, workers=workers, **options)


def _signed(options: dict[str, Any]) -> tuple[str, Output]:
    """The signed URL of the card ``sign`` and ``meta`` describe, and what the server will
    make of it: checked by the server's own parser, with the server's settings, so a URL
    it would refuse is never printed (exit 2 with its message instead)."""
    card = [options[name] for name in ("title", "subtitle", "template", "accent_color", "extra")]
    params = card_params(*card)
    base = endpoint_url(
        options["public_url"], options["host"] or DEFAULT_HOST, options["port"] or DEFAULT_PORT
    )
    output = checked_card(params, base, options["templates_dir"], options["asset_origins"] or ())
    secret = secret_for_signing(options["secrets"], options["dev"], options["dev_secret_file"])
    return checked_url(sign_url(base, secret, params)), output


@main.command()
@card_options
@signing_options
@click.option("--alt", default=None, help="og:image:alt text (default: the title).")
def meta(alt: str | None, **options: Any) -> None:
    """Print the <meta> tags (og:image, twitter:image, size) for a signed card."""
    url, output = _signed(options)
    pixels = replace(output, width=output.width * output.scale, height=output.height * output.scale)
    click.echo(meta_tags(url, pixels, alt=alt or options["title"]))


@main.command()
@card_options
@signing_options
def sign(**options: Any) -> None:
    """Print a signed image URL (checked as the server would check it)."""
    click.echo(_signed(options)[0])


for command in (render, warm, templates, cache):
    main.add_command(command)

if __name__ == "__main__":
    main()
