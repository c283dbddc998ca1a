"""A batch of cards rendered into a folder at build time, without a server: `ogproxy render`.

One card from flags, or many from a JSON-lines or CSV file, rendered concurrently on a
pool of pages into a folder. Each output file's content address is kept in a manifest in
the cache folder (one per output folder: the output folder ships with the site and gets
nothing but the images), so a card whose parameters, template and fonts did not change
is skipped.

The files are what spreadsheets export: a UTF-8 byte order mark is skipped, and a CSV
column that no template takes is an error before anything renders (``ignore_unknown``
leaves such fields out instead). Two rows never write one file, and a name that had to
be changed to be a safe file name is reported.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cards import card_key
from .config import Settings
from .errors import OgProxyError
from .fonts import fingerprint
from .formats import FORMATS, Format
from .integrity import CardSeal
from .objectstore import ObjectTier
from .params import CORE, OUTPUT, Output, TemplateSpec, json_pairs, parse_card
from .rendering import Renderer
from .service import Service
from .templates import TemplateSet

NAME_FIELDS = ("name", "slug", "file")  # which field names the output file
BUILD_DRAIN = 600.0  # seconds a build waits for its uploads to the object store


@dataclass
class Job:
    line: int
    fields: dict[str, Any]
    name: str = ""


@dataclass
class Batch:
    jobs: list[Job]
    columns: tuple[str, ...] = ()  # a CSV file's header (every row has every column)


@dataclass
class Summary:
    rendered: int = 0
    restored: int = 0  # unchanged cards whose file was missing, written again
    skipped: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    renamed: list[tuple[int, str, str]] = field(default_factory=list)  # line, given, written
    seconds: float = 0.0
    uploaded: int = 0  # cards put into the object store (with --store)
    present: int = 0  # cards the object store already had
    upload_failures: int = 0


def read_jobs(path: Path) -> Batch:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (a header row) file,
    UTF-8 with or without a byte order mark (Excel writes one)."""
    jobs = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for line, row in enumerate(reader, start=2):
                jobs.append(Job(line, {k: v for k, v in row.items() if k and v not in ("", None)}))
            return Batch(jobs, tuple(c for c in reader.fieldnames or () if c))
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if text.strip():
            try:
                fields = json.loads(text)
            except json.JSONDecodeError as exc:
                fields = {"__error__": f"not JSON: {exc.msg}"}
            jobs.append(
                Job(line, fields if isinstance(fields, dict) else {"__error__": "not an object"})
            )
    return Batch(jobs)


def _known(spec: TemplateSpec | None) -> set[str]:
    """The fields a row may have for a template (``None``: those every template takes)."""
    own = spec.params if spec else ()
    return {*CORE, *OUTPUT, *NAME_FIELDS, *(p.name for p in own)}


def unknown_columns(columns: Iterable[str], templates: TemplateSet) -> list[str]:
    """The columns that are not a parameter of any template (nor a file name field)."""
    known = set().union(*(_known(spec) for spec in templates.specs.values()))
    return [c for c in columns if c not in known]


def _without_unknown(fields: dict[str, Any], templates: TemplateSet) -> dict[str, Any]:
    """``fields`` without those the row's template does not take."""
    known = _known(templates.specs.get(str(fields.get("template", "default")).strip()))
    return {k: v for k, v in fields.items() if k in known}


def _file_name(job: Job, key: str, fmt: str) -> tuple[str, str | None]:
    """The output file's name, and the name field's value if it had to be changed to be a
    safe file name (``../evil`` -> ``evil.png``, spaces -> dashes)."""
    given = None
    for name in NAME_FIELDS:
        if value := job.fields.pop(name, None):
            given = given or str(value)
            stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(value)).strip(".-")
            if stem.lower().endswith(FORMATS[fmt].suffixes):  # `-o card.jpeg` stays card.jpeg
                return stem, None if stem == str(value) else str(value)
            if stem:
                return stem + FORMATS[fmt].suffix, None if stem == str(value) else str(value)
    return key[:16] + FORMATS[fmt].suffix, given


def manifest_path(cache_dir: Path, out_dir: Path) -> Path:
    """Where the skip manifest of ``out_dir`` is kept: in the cache, named by the folder."""
    digest = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:24]
    return cache_dir / "manifests" / f"{digest}.json"


def _image_at(path: Path, fmt: Format, *, whole: bool) -> bytes | None:
    """The bytes of ``path`` (only its first ones unless ``whole``) if it is still an image
    of ``fmt``: a file emptied or overwritten since it was written is rendered again, never
    uploaded as the card."""
    try:
        with path.open("rb") as file:
            data = file.read() if whole else file.read(64)  # magic bytes are in the first 12
    except OSError:
        return None
    return data if FORMATS[fmt].matches(data) else None


def _read_manifest(path: Path) -> dict[str, str]:
    # A lost or damaged manifest only costs re-rendering: it is a cache too.
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def render_jobs(
    jobs: Iterable[Job],
    out_dir: Path,
    settings: Settings,
    fmt: Format = "png",
    on_progress: Callable[[], None] = lambda: None,
    renderer: Renderer | None = None,
    *,
    templates: TemplateSet | None = None,
    ignore_unknown: bool = False,
) -> Summary:
    """Render ``jobs`` into ``out_dir``, skipping those whose content address is unchanged.

    With ``settings.store``, cards already in the object store are not rendered, and
    every card (skipped ones too) ends up there. A card rendered without an asset that
    failed (``OGPROXY_ASSET_FAILURE=degrade``) is written but counted as failed, and is
    not recorded as rendered: the next run renders it again. ``renderer``: Chromium unless given;
    ``templates``: those of ``settings`` unless given. ``ignore_unknown`` leaves out the
    fields a row's template does not take (else the row fails, naming the field).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_file = manifest_path(settings.cache_dir, out_dir)
    manifest = _read_manifest(manifest_file)
    if templates is None:
        templates = TemplateSet(*settings.template_dirs, trust=settings.trusted_templates)
    fonts = fingerprint(settings.fonts_dir)
    output = Output(palette=settings.png_palette).as_format(fmt)
    summary = Summary()
    started = time.monotonic()

    remote = None
    if settings.store:
        seal = CardSeal(settings.signing_secrets)
        remote = await ObjectTier.open(settings.store, os.environ, seal, queue=0)
    if remote is not None:
        remote.start()
    planned = []
    claimed: dict[str, int] = {}  # each output file's name (case-folded) -> its row's line
    for job in jobs:
        try:
            if "__error__" in job.fields:
                raise ValueError(job.fields["__error__"])
            if ignore_unknown:
                job.fields = _without_unknown(job.fields, templates)
            name_fields = {k: job.fields.pop(k) for k in NAME_FIELDS if k in job.fields}
            params, out = parse_card(json_pairs(job.fields), templates.specs, output)
            key = card_key(templates, fonts, params, out)
            job.fields.update(name_fields)
            job.name, given = _file_name(job, key, fmt)
            # Case-folded: on a case-insensitive disk Post.png is post.png.
            first = claimed.setdefault(job.name.casefold(), job.line)
            if first != job.line:
                raise ValueError(
                    f"writes {job.name}, as line {first} does (give each row its own name)"
                )
        except (OgProxyError, ValueError) as exc:
            summary.failed.append((job.line, getattr(exc, "public_message", str(exc))))
            on_progress()
            continue
        if given is not None:
            summary.renamed.append((job.line, given, job.name))
        unchanged = manifest.get(job.name) == key
        # Read whole only to upload it: a run without a store checks the magic bytes only.
        whole = remote is not None
        written = _image_at(out_dir / job.name, out.format, whole=whole) if unchanged else None
        if written is not None:
            summary.skipped += 1
            if remote is not None:
                remote.enqueue(key, out.format, written)
            on_progress()
            continue
        planned.append((job, params, out, key, unchanged))

    if planned:
        # The server's cache dir: cards it already rendered are copied, not rendered again.
        # Every card waits its turn (no 503s) and none is kept in memory once written.
        own = replace(settings, queue=min(len(planned), 100_000), memory_cache=0)
        waiting = asyncio.Semaphore(own.queue)  # never more than the queue takes
        service = Service.build(own, renderer, templates)
        async with service.running(remote):
            cards = service.cards

            async def one(job: Job, params: Any, out: Output, key: str, restore: bool) -> None:
                try:
                    async with waiting:
                        result = await cards.get_or_render(key, params, out)
                except OgProxyError as exc:
                    summary.failed.append((job.line, exc.public_message))
                else:
                    (out_dir / job.name).write_bytes(result.body)
                    if result.failed is not None:
                        # Degraded: reported, and never "unchanged" (the next run tries
                        # the asset again); nowhere stored, so not uploaded either.
                        problem = f"{result.failed.public_message}; written without it"
                        summary.failed.append((job.line, problem))
                        manifest.pop(job.name, None)
                    else:
                        if remote is not None and result.source != "MISS":
                            remote.enqueue(key, out.format, result.body)  # a render enqueued itself
                        manifest[job.name] = key
                        if restore:
                            summary.restored += 1
                        else:
                            summary.rendered += 1
                on_progress()

            await asyncio.gather(*(one(*item) for item in planned))
    manifest_file.parent.mkdir(parents=True, exist_ok=True)
    manifest_file.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if remote is not None:
        await remote.close(BUILD_DRAIN)
        summary.uploaded, summary.present = remote.uploads, remote.conflicts
        summary.upload_failures = remote.upload_failures
    summary.seconds = time.monotonic() - started
    summary.failed.sort()
    summary.renamed.sort()
    return summary
