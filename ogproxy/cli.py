"""The ``ogproxy`` command: a thin layer over the Python API."""

from __future__ import annotations

import os
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
        "http": "ogproxy.protocol:BoundedHttpToolsProtocol",  # request heads bounded
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker builds the same settings from the environment (the dev secret is made
    # once, here, so that every worker verifies with it).
    os.environ.update(settings.to_env())
    uvicorn.run("ogproxy.app:app_from_env", factory=True, workers=workers, **options)


def _signed(options: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """The signed URL and the parameters of the card that ``sign`` and ``meta`` describe."""
    card = [options[name] for name in ("title", "subtitle", "template", "accent_color", "extra")]
    params = card_params(*card)
    secret = secret_for_signing(options["secrets"], options["dev"], options["dev_secret_file"])
    return sign_url(options["base_url"], secret, params), params


@main.command()
@card_options
@signing_options
@click.option("--alt", default=None, help="og:image:alt text (default: the title).")
def meta(alt: str | None, **options: Any) -> None:
    """Print the <meta> tags (og:image, twitter:image, size) for a signed card."""
    url, params = _signed(options)
    width = int(params.get("width") or 1200) * int(params.get("scale") or 1)
    height = int(params.get("height") or 630) * int(params.get("scale") or 1)
    fmt = ENDPOINTS.get("/" + urlsplit(options["base_url"]).path.rsplit("/", 1)[-1], "png")
    output = Output(width=width, height=height, format=fmt)
    click.echo(meta_tags(url, output, alt=alt or options["title"]))


@main.command()
@card_options
@signing_options
def sign(**options: Any) -> None:
    """Print a signed image URL."""
    click.echo(_signed(options)[0])


for command in (render, warm, templates, cache):
    main.add_command(command)

if __name__ == "__main__":
    main()
