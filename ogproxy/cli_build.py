"""The ``ogproxy`` commands that work on files: render, warm, templates."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_options import (
    InvalidInput,
    card_options,
    card_params,
    config_errors,
    setting_option,
    setting_options,
    settings_or_exit,
)
from .formats import FORMATS, Format, for_file

if TYPE_CHECKING:
    from rich.console import Console

    from .batch import Summary

*_FIRST, _LAST = (row.suffix for row in FORMATS.values())
_SUFFIXES = f"{', '.join(_FIRST)} or {_LAST}"  # .png, .jpg or .webp


def user_cache_dir() -> Path:
    """The per-user cache folder (XDG), so a build leaves nothing in the project."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ogproxy" / "cache"


# render's own default: the current folder is a site's project root, not a server's home.
render_cache_dir_option = setting_option(
    "cache_dir",
    default=user_cache_dir,
    show_default="$XDG_CACHE_HOME/ogproxy/cache, i.e. ~/.cache/ogproxy/cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Render cache and skip manifests; give the server's (and its secret) to reuse its "
    "renders.",
)
render_secret_option = setting_option(
    "secrets",
    help="The servers' signing secret(s): every stored card is sealed with the last one, "
    "and a server serves only what its secrets sealed. Needed with --store; without one, "
    "a secret of the build's own is kept next to --cache-dir.",
    show_default="none",
)


def _render_options(func: Any) -> Any:
    options = [
        render_cache_dir_option,
        render_secret_option,
        setting_options(
            "store", "templates_dir", "fonts_dir", "asset_origins", "asset_failure", "chromium"
        ),
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


@click.command()
@card_options
@click.option(
    "-o",
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Render one card (from the flags) to this file; {_SUFFIXES}.",
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
    type=click.Choice(list(FORMATS)),
    default=None,
    help="Image format for --input (default png; -o takes it from the suffix).",
)
@click.option(
    "--ignore-unknown",
    is_flag=True,
    help="Leave out the fields a row's template does not take (an export's extra "
    "columns); without it such a CSV column is an error, and such a JSON field fails its row.",
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
    fmt: Format | None,
    ignore_unknown: bool,
    cache_dir: Path,
    secrets: tuple[str, ...] | None,
    store: str | None,
    templates_dir: Path | None,
    fonts_dir: Path | None,
    asset_origins: tuple[str, ...] | None,
    asset_failure: str | None,
    chromium: str | None,
    concurrency: int | None,
) -> None:
    """Render cards to files, without a server (build-time generation).

    With --store, every card also goes to the object store, so that a fleet starts warm.
    """
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .batch import Batch, Job, read_jobs, render_jobs, unknown_columns
    from .service import load_templates

    if (output_file is None) == (input_file is None):
        raise click.UsageError("give either -o FILE (one card from flags) or --input FILE")
    if output_file is not None:
        row = for_file(output_file.name)
        if row is None:
            raise click.BadParameter(f"must end in {_SUFFIXES}", param_hint="-o")
        fmt = row.name
        fields = {
            k: v
            for k, v in card_params(title, subtitle, template, accent_color, extra).items()
            if v is not None
        }
        batch = Batch([Job(0, {**fields, "name": output_file.name})])
        out_dir = output_file.parent
    else:
        assert input_file is not None
        try:
            batch = read_jobs(input_file)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise click.ClickException(f"--input {input_file}: {_reason(exc)}") from None
    if store and not secrets:
        raise click.UsageError(
            "--store needs the servers' OGPROXY_SECRET (or --secret): they serve only the "
            "cards sealed with it"
        )
    settings = settings_or_exit(
        # Nothing is signed or verified; the secret seals the cards stored (integrity.py).
        secrets=secrets,
        dev=not secrets,
        dev_secret_file=cache_dir.parent / "dev-secret",
        cache_dir=cache_dir,
        templates_dir=templates_dir,
        fonts_dir=fonts_dir,
        asset_origins=asset_origins,
        asset_failure=asset_failure,
        chromium=chromium,
        pages=concurrency,
        store=store,
    )
    with config_errors():
        loaded = load_templates(settings)
        if settings.store:
            from .objectstore import check_store

            check_store(settings.store)  # a missing bucket is an error before any render
    unknown = unknown_columns(batch.columns, loaded)
    if unknown and not ignore_unknown:
        names = ", ".join(repr(c) for c in unknown)
        many = len(unknown) > 1
        which = f"columns {names} are" if many else f"column {names} is"
        raise InvalidInput(
            f"--input {input_file}: {which} not a parameter of any template; "
            f"--ignore-unknown leaves {'them' if many else 'it'} out"
        )
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=output_file is not None,
    ) as bar:
        task = bar.add_task("rendering", total=len(batch.jobs))
        try:
            with config_errors():  # no browser
                summary = asyncio.run(
                    render_jobs(
                        batch.jobs,
                        out_dir,
                        settings,
                        fmt or "png",
                        on_progress=lambda: bar.advance(task),
                        templates=loaded,
                        ignore_unknown=ignore_unknown,
                    )
                )
        except OSError as exc:  # an output or cache folder that cannot be written
            raise click.ClickException(_reason(exc)) from None
    _report(console, summary, out_dir, settings.store)
    if summary.failed or summary.upload_failures:
        raise SystemExit(1)


def _report(console: Console, summary: Summary, out_dir: Path, store: str | None) -> None:
    """The summary, then a line for each failed row and each renamed file: as they are
    (no wrapping inside a message, no [markup] read in it)."""

    def say(text: str, style: str | None = None) -> None:
        console.print(text, style=style, soft_wrap=True, markup=False, highlight=False)

    restored = f"{summary.restored} restored, " if summary.restored else ""
    rate = f" ({summary.rendered / summary.seconds:.1f} cards/s)" if summary.rendered else ""
    say(
        f"{summary.rendered} rendered, {restored}{summary.skipped} unchanged (skipped), "
        f"{len(summary.failed)} failed in {summary.seconds:.1f} s{rate} -> {out_dir}"
    )
    if store:
        say(
            f"object store {store}: {summary.uploaded} uploaded, "
            f"{summary.present} already there, {summary.upload_failures} failed"
        )
    for line, problem in summary.failed:
        say(f"  line {line}: {problem}" if line else f"  {problem}", "red")
    for line, given, name in summary.renamed:
        written = f"name {given!r} written as {name}"
        say(f"  line {line}: {written}" if line else f"  {written}", "yellow")


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

    from .warm import UNREQUESTABLE, SourceError, requestable
    from .warm import warm as run_warm

    if source.startswith(("http://", "https://")) and not requestable(source):
        raise InvalidInput(f"SOURCE: {source[:100]!r} is {UNREQUESTABLE}")
    console = Console(stderr=True)
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
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
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    statuses = ", ".join(f"{n} x {label}" for label, n in sorted(report.statuses.items()))
    console.print(f"{report.pages} pages, {report.images} images: {statuses or 'none requested'}")
    for url, problem in report.failures:
        console.print(f"  {problem}: {url}", style="red")
    if report.failures:
        raise SystemExit(1)


@click.command()
@setting_option("templates_dir")
@click.option(
    "--check",
    is_flag=True,
    help="Check every template completely (header, syntax, names in every branch, the "
    "sandbox, sample renders): exit 2 with file:line for each problem, else 0.",
)
@click.option(
    "--preview",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also render each template with sample parameters to DIR/<name>.png (Chromium).",
)
def templates(templates_dir: Path | None, check: bool, preview: Path | None) -> None:
    """List templates with their version (use it as `v` to bust caches) and parameters."""
    from .config import template_dirs
    from .templates import TemplateSet

    with config_errors():  # every problem as file:line, exit 2
        loaded = TemplateSet(*template_dirs(templates_dir))
    if check:
        names = ", ".join(loaded.templates)
        click.echo(f"{len(loaded.templates)} templates pass every check: {names}")
    else:
        for name, info in loaded.describe().items():
            params = ", ".join(str(p["name"]) for p in info["params"])  # type: ignore[attr-defined]
            click.echo(
                f"{name:<16} v={info['version']}  accentColor={info['accentColor']}"
                + (f"  params: {params}" if params else "")
            )
    if preview is not None:
        _preview(loaded, templates_dir, preview)


def _preview(loaded: Any, templates_dir: Path | None, out_dir: Path) -> None:
    """One PNG a template, every declared parameter filled with a sample."""
    import asyncio
    import tempfile

    from .batch import Job, render_jobs
    from .config import Settings
    from .templatecheck import SAMPLE_IMAGE

    jobs = []
    for i, (name, template) in enumerate(loaded.templates.items(), 1):
        fields: dict[str, Any] = {"template": name, "title": f"A {name} card, previewed"}
        fields["subtitle"] = "Every declared parameter filled with a sample"
        for p in template.spec.params:
            sample = {"image": SAMPLE_IMAGE, "choice": p.default}.get(p.kind, "Sample")
            fields[p.name] = sample
        jobs.append(Job(i, fields, name))
    with tempfile.TemporaryDirectory() as cache, config_errors():
        settings = Settings(dev=True, templates_dir=templates_dir, cache_dir=Path(cache))
        summary = asyncio.run(render_jobs(jobs, out_dir, settings))
    for line, problem in summary.failed:
        click.echo(f"{jobs[line - 1].name}: {problem}", err=True)
    click.echo(f"{summary.rendered + summary.skipped} previews in {out_dir}")
    if summary.failed:
        raise SystemExit(2)
