"""The ``ogproxy`` commands that work on files: render, warm, templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli_options import (
    asset_origins_option,
    cache_dir_option,
    card_options,
    card_params,
    chromium_option,
    fonts_dir_option,
    preflight_or_exit,
    settings_or_exit,
    store_option,
    templates_dir_option,
)
from .config import split_secrets
from .errors import ConfigError


def _render_options(func: Any) -> Any:
    options = [
        cache_dir_option,
        store_option,
        templates_dir_option,
        fonts_dir_option,
        asset_origins_option,
        chromium_option,
        click.option(
            "--concurrency",
            default=None,
            type=click.IntRange(1, 64),
            help="Pages rendering at once. Default: two per core.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@card_options
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
    store: str | None,
    templates_dir: Path | None,
    fonts_dir: Path | None,
    asset_origins: str,
    chromium: str | None,
    concurrency: int | None,
) -> None:
    """Render cards to files, without a server (build-time generation).

    With --store, every card also goes to the object store, so that a fleet starts warm.
    """
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .build import Job, read_jobs, render_jobs

    if (output_file is None) == (input_file is None):
        raise click.UsageError("give either -o FILE (one card from flags) or --input FILE")
    if output_file is not None:
        suffix = output_file.suffix.lower()
        fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(suffix)
        if fmt is None:
            raise click.BadParameter("must end in .png, .jpg or .webp", param_hint="-o")
        fields = {
            k: v
            for k, v in card_params(title, subtitle, template, accent_color, extra).items()
            if v is not None
        }
        jobs = [Job(0, {**fields, "name": output_file.stem})]
        out_dir = output_file.parent
    else:
        assert input_file is not None
        jobs = read_jobs(input_file)
    settings = settings_or_exit(
        dev=True,  # renders to files: nothing is signed or verified, no secret is needed
        cache_dir=cache_dir,
        templates_dir=templates_dir,
        fonts_dir=fonts_dir,
        asset_origins=split_secrets(asset_origins),
        chromium=chromium,
        store=store or None,
        **({"pages": concurrency} if concurrency else {}),
    )
    preflight_or_exit(settings.chromium)
    if settings.store:
        _check_store(settings.store)
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
    if settings.store:
        console.print(
            f"object store {settings.store}: {summary.uploaded} uploaded, "
            f"{summary.present} already there, {summary.upload_failures} failed"
        )
    for line, problem in summary.failed:
        console.print(f"  line {line}: {problem}" if line else f"  {problem}", style="red")
    if summary.failed or summary.upload_failures:
        raise SystemExit(1)


def _check_store(url: str) -> None:
    from .objectstore import check_store

    try:
        check_store(url)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
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


@click.command()
@templates_dir_option
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
