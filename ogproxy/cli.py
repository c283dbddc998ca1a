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
from .cli_build import cache, render, templates, warm
from .cli_options import (
    card_options,
    card_params,
    config_errors,
    secret_for_signing,
    setting_options,
    settings_or_exit,
    signing_options,
)
from .config import declarations
from .formats import ENDPOINTS
from .meta import meta_tags
from .params import Output
from .signing import sign_url


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ogproxy")
def main() -> None:
    """ogproxy: signed Open Graph image URLs, rendered once with Chromium, cached on disk."""


@main.command()
@setting_options(*(d.name for d in declarations()))
def serve(**values: Any) -> None:
    """Serve signed image URLs over HTTP."""
    import uvicorn

    from .app import create_app

    workers = values["workers"] or 1
    # Several workers share the cores: by default each gets one browser and its share of pages.
    if values["pages"] is None:
        values["pages"] = max(1, 2 * (os.cpu_count() or 1) // workers)
    if values["browsers"] is None and workers > 1:
        values["browsers"] = 1
    settings = settings_or_exit(**values)
    configure_logging(settings.log_level, settings.access_log)
    with config_errors():
        preflight(settings.chromium)
        app = create_app(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "server_header": False,
        "access_log": False,  # ogproxy logs each request itself, without the query
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker builds the same settings from the environment (the dev secret is made
    # once, here, so that every worker verifies with it).
    os.environ.update(settings.to_env())
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
    secrets: tuple[str, ...] | None,
    dev: bool | None,
    dev_secret_file: Path | None,
    alt: str | None,
) -> None:
    """Print the <meta> tags (og:image, twitter:image, size) for a signed card."""
    params = card_params(title, subtitle, template, accent_color, extra)
    url = sign_url(base_url, secret_for_signing(secrets, dev, dev_secret_file), params)
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
    secrets: tuple[str, ...] | None,
    dev: bool | None,
    dev_secret_file: Path | None,
) -> None:
    """Print a signed image URL."""
    click.echo(
        sign_url(
            base_url,
            secret_for_signing(secrets, dev, dev_secret_file),
            card_params(title, subtitle, template, accent_color, extra),
        )
    )


for command in (render, warm, templates, cache):
    main.add_command(command)

if __name__ == "__main__":
    main()
