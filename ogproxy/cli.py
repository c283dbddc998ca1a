"""The ``ogproxy`` command: a thin layer over the Python API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from . import __version__
from .accesslog import configure as configure_logging
from .browser import preflight
from .config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_DEV_SECRET_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_RENDER_TIMEOUT,
    Settings,
    dev_secret,
    parse_size,
    split_secrets,
)
from .errors import ConfigError
from .meta import meta_tags
from .params import Output
from .signing import sign_url

DEFAULT_BASE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/og.png"


def _settings(**values: object) -> Settings:
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ogproxy")
def main() -> None:
    """ogproxy: signed Open Graph image URLs, rendered once with Chromium, cached on disk."""


@main.command()
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
    "--cache-dir",
    envvar="OGPROXY_CACHE_DIR",
    default=DEFAULT_CACHE_DIR,
    type=click.Path(file_okay=False, path_type=Path),
    show_envvar=True,
    help="Directory of the persistent render cache.",
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
    "--chromium",
    envvar="OGPROXY_CHROMIUM",
    default=None,
    show_envvar=True,
    help="Chromium binary (default: Playwright's, else the system's).",
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
    "--templates-dir",
    envvar="OGPROXY_TEMPLATES_DIR",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    show_envvar=True,
    help="Folder of card templates (default: the built-in ones).",
)
@click.option(
    "--fonts-dir",
    envvar="OGPROXY_FONTS_DIR",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    show_envvar=True,
    help="Folder of extra fonts (woff2, woff, ttf, otf) the templates can use by family name.",
)
@click.option(
    "--asset-origins",
    envvar="OGPROXY_ASSET_ORIGINS",
    default="",
    show_envvar=True,
    help="Comma-separated origins (https://host) that avatar/logo URLs may be fetched from.",
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
    settings = _settings(**values)
    configure_logging(log_level, access_log)
    try:
        preflight(settings.chromium)
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


def _card_options(func: Any) -> Any:
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


def _render_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--cache-dir",
                envvar="OGPROXY_CACHE_DIR",
                default=DEFAULT_CACHE_DIR,
                type=click.Path(file_okay=False, path_type=Path),
                show_envvar=True,
                help="Render cache shared with the server: known cards are copied.",
            ),
            click.option(
                "--templates-dir",
                envvar="OGPROXY_TEMPLATES_DIR",
                default=None,
                type=click.Path(file_okay=False, exists=True, path_type=Path),
                show_envvar=True,
                help="Your templates, over the built-in ones.",
            ),
            click.option(
                "--fonts-dir",
                envvar="OGPROXY_FONTS_DIR",
                default=None,
                type=click.Path(file_okay=False, exists=True, path_type=Path),
                show_envvar=True,
                help="Extra fonts.",
            ),
            click.option(
                "--asset-origins",
                envvar="OGPROXY_ASSET_ORIGINS",
                default="",
                show_envvar=True,
                help="Origins avatar/logo URLs may be fetched from.",
            ),
            click.option(
                "--chromium",
                envvar="OGPROXY_CHROMIUM",
                default=None,
                show_envvar=True,
                help="Chromium binary.",
            ),
            click.option(
                "--concurrency",
                default=None,
                type=click.IntRange(1, 64),
                help="Pages rendering at once. Default: two per core.",
            ),
        ]
    ):
        func = option(func)
    return func


@main.command()
@_card_options
@click.option(
    "-o",
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Render one card (from the flags) to this file; .png, .jpg or .webp.",
)
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Render many cards: a .jsonl file (one JSON object per line) or a .csv file.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("og-images"),
    help="Folder for --input renders. A field name/slug/file names each file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpeg", "webp"]),
    default=None,
    help="Image format for --input (default png; -o takes it from the suffix).",
)
@_render_options
def render(
    title: str | None,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
    output_file: Path | None,
    input_file: Path | None,
    out_dir: Path,
    fmt: str | None,
    cache_dir: Path,
    templates_dir: Path | None,
    fonts_dir: Path | None,
    asset_origins: str,
    chromium: str | None,
    concurrency: int | None,
) -> None:
    """Render cards to files, without a server (build-time generation)."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .build import Job, read_jobs, render_jobs

    if (output_file is None) == (input_file is None):
        raise click.UsageError("give either -o FILE (one card from flags) or --input FILE")
    if output_file is not None:
        if not title:
            raise click.UsageError("--title is required with -o")
        suffix = output_file.suffix.lower()
        fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(suffix)
        if fmt is None:
            raise click.BadParameter("must end in .png, .jpg or .webp", param_hint="-o")
        fields = {
            k: v
            for k, v in _card_params(title, subtitle, template, accent_color, extra).items()
            if v is not None
        }
        jobs = [Job(0, {**fields, "name": output_file.stem})]
        out_dir = output_file.parent
    else:
        assert input_file is not None
        jobs = read_jobs(input_file)
    settings = _settings(
        dev=True,  # renders to files: nothing is signed or verified, no secret is needed
        cache_dir=cache_dir,
        templates_dir=templates_dir,
        fonts_dir=fonts_dir,
        asset_origins=split_secrets(asset_origins),
        chromium=chromium,
        **({"pages": concurrency} if concurrency else {}),
    )
    preflight_or_exit(settings.chromium)
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=output_file is not None,
    ) as bar:
        task = bar.add_task("rendering", total=len(jobs))
        summary = asyncio.run(
            render_jobs(
                jobs, out_dir, settings, fmt or "png", on_progress=lambda: bar.advance(task)
            )
        )
    rate = summary.rendered / summary.seconds if summary.seconds else 0.0
    console.print(
        f"{summary.rendered} rendered, {summary.skipped} unchanged (skipped), "
        f"{len(summary.failed)} failed in {summary.seconds:.1f} s "
        f"({rate:.1f} cards/s) -> {out_dir}"
    )
    for line, problem in summary.failed:
        console.print(f"  line {line}: {problem}" if line else f"  {problem}", style="red")
    if summary.failed:
        raise SystemExit(1)


@main.command()
@click.argument("source")
@click.option("--concurrency", default=8, type=click.IntRange(1, 256), help="Requests at once.")
@click.option("--timeout", default=30.0, type=float, help="Seconds per request.")
def warm(source: str, concurrency: int, timeout: float) -> None:
    """Render and cache every og:image of a site before launch.

    SOURCE is a sitemap (URL or file) or a text file of page URLs. Each page is fetched,
    its og:image and twitter:image URLs are collected and requested once.
    """
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    from .warm import warm as run_warm

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("warming", total=None)
        report = asyncio.run(
            run_warm(
                source,
                concurrency,
                timeout,
                on_total=lambda n: bar.update(task, total=n),
                on_progress=lambda: bar.advance(task),
            )
        )
    statuses = ", ".join(f"{n} x {label}" for label, n in sorted(report.statuses.items()))
    console.print(f"{report.pages} pages, {report.images} images: {statuses or 'none requested'}")
    for url, problem in report.failures:
        console.print(f"  {problem}: {url}", style="red")
    if report.failures:
        raise SystemExit(1)


@main.command()
@click.option(
    "--templates-dir",
    envvar="OGPROXY_TEMPLATES_DIR",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    show_envvar=True,
)
def templates(templates_dir: Path | None) -> None:
    """List templates with their version (use it as `v` to bust caches) and parameters."""
    from .config import TEMPLATES_DIR
    from .templates import TemplateSet

    folders = (templates_dir, TEMPLATES_DIR) if templates_dir else (TEMPLATES_DIR,)
    for name, info in TemplateSet(*folders).describe().items():
        params = ", ".join(str(p["name"]) for p in info["params"])  # type: ignore[attr-defined]
        click.echo(
            f"{name:<16} v={info['version']}  accentColor={info['accentColor']}"
            + (f"  params: {params}" if params else "")
        )


@main.group()
def cache() -> None:
    """Inspect or trim the render cache."""


_cache_dir_option = click.option(
    "--cache-dir",
    envvar="OGPROXY_CACHE_DIR",
    default=DEFAULT_CACHE_DIR,
    type=click.Path(file_okay=False, path_type=Path),
    show_envvar=True,
)


def _open_store(cache_dir: Path) -> Any:
    from .store import Store

    if not cache_dir.is_dir():
        raise click.ClickException(f"no cache at {cache_dir}")
    return Store(cache_dir, size_limit=None, memory_bytes=0)  # keep the server's limit


@cache.command("stats")
@_cache_dir_option
def cache_stats(cache_dir: Path) -> None:
    """Entries and bytes in the cache."""
    store = _open_store(cache_dir)
    try:
        info = store.stats()
    finally:
        store.close()
    click.echo(
        f"{info['directory']}: {info['entries']} entries, "
        f"{int(info['bytes']) / 2**20:.1f} MiB of {int(info['size_limit']) / 2**20:.0f} MiB"
    )


@cache.command("clear")
@_cache_dir_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def cache_clear(cache_dir: Path, yes: bool) -> None:
    """Delete every cached image (they are rendered again on demand)."""
    if not yes:
        click.confirm(f"Delete every cached image in {cache_dir}?", abort=True)
    store = _open_store(cache_dir)
    try:
        click.echo(f"removed {store.clear()} entries")
    finally:
        store.close()


@cache.command("prune")
@_cache_dir_option
@click.option("--to", "target", required=True, help="Size to shrink to, e.g. 500MB.")
def cache_prune(cache_dir: Path, target: str) -> None:
    """Evict the oldest images until the cache is at most --to."""
    try:
        to_bytes = parse_size(target, "--to")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    store = _open_store(cache_dir)
    try:
        removed = store.prune(to_bytes)
        click.echo(f"removed {removed} entries; {int(store.stats()['bytes']) / 2**20:.1f} MiB left")
    finally:
        store.close()


def preflight_or_exit(chromium: str | None) -> None:
    try:
        preflight(chromium)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@_card_options
@click.option(
    "--base-url",
    envvar="OGPROXY_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_envvar=True,
    help="Public URL of the image endpoint.",
)
@click.option(
    "--secret",
    envvar="OGPROXY_SECRET",
    default=None,
    show_envvar=True,
    show_default=False,
    help="Signing secret(s); the last one signs.",
)
@click.option("--dev", is_flag=True, help="Sign with the local secret that `serve --dev` keeps.")
@click.option(
    "--dev-secret-file",
    envvar="OGPROXY_DEV_SECRET_FILE",
    default=DEFAULT_DEV_SECRET_FILE,
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
)
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
    if not title:
        raise click.UsageError("--title is required")
    params = _card_params(title, subtitle, template, accent_color, extra)
    url = sign_url(base_url, _secret_for_signing(secret, dev, dev_secret_file), params)
    width = int(params.get("width") or 1200) * int(params.get("scale") or 1)
    height = int(params.get("height") or 630) * int(params.get("scale") or 1)
    fmt = {"og.jpeg": "jpeg", "og.jpg": "jpeg", "og.webp": "webp"}.get(
        base_url.rsplit("/", 1)[-1], "png"
    )
    click.echo(meta_tags(url, Output(width=width, height=height, format=fmt), alt=alt or title))  # type: ignore[arg-type]


@main.command()
@click.option("--title", required=True, help="Card title.")
@click.option("--subtitle", default=None, help="Card subtitle.")
@click.option("--template", default=None, help="Template name (default, minimal, gradient).")
@click.option("--accent-color", default=None, help="Accent colour, #rgb or #rrggbb.")
@click.option(
    "--param",
    "extra",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other parameter (repeatable).",
)
@click.option(
    "--base-url",
    envvar="OGPROXY_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_envvar=True,
    help="Public URL of the image endpoint.",
)
@click.option(
    "--secret",
    envvar="OGPROXY_SECRET",
    default=None,
    show_envvar=True,
    show_default=False,
    help="Signing secret(s); the last one signs.",
)
@click.option("--dev", is_flag=True, help="Sign with the local secret that `serve --dev` keeps.")
@click.option(
    "--dev-secret-file",
    envvar="OGPROXY_DEV_SECRET_FILE",
    default=DEFAULT_DEV_SECRET_FILE,
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
)
def sign(
    title: str,
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
            _secret_for_signing(secret, dev, dev_secret_file),
            _card_params(title, subtitle, template, accent_color, extra),
        )
    )


def _card_params(
    title: str,
    subtitle: str | None,
    template: str | None,
    accent_color: str | None,
    extra: tuple[str, ...],
) -> dict[str, str | None]:
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


def _secret_for_signing(secret: str | None, dev: bool, dev_secret_file: Path) -> str:
    if secret:
        return split_secrets(secret)[-1]
    if dev:
        return dev_secret(dev_secret_file)
    raise click.UsageError("no secret: set OGPROXY_SECRET (or --secret), or pass --dev")


if __name__ == "__main__":
    main()
