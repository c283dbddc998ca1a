"""The render-once service: a card's image from memory, from disk, from the object store,
or rendered exactly once.

Identical misses in this process share one render (single flight); other worker
processes on the same cache dir wait for it through a lock in the cache itself. It knows
nothing of HTTP, nor of Chromium: the renderer is any ``rendering.Renderer``. The
composition root (service.py) builds it for the server and for ``ogproxy render``.

A card whose image, stylesheet or font fails (``OGPROXY_ASSET_FAILURE=degrade``) is
rendered without it and handed back DEGRADED: never stored in any tier, so the next
request tries the asset again and, once it loads, renders and stores the real card. A
crawler that asked meanwhile gets a card rather than an error (Facebook keeps a scrape
for weeks), and never one that could pass for the real card. Strict (``fail``), the
asset's failure is the render's error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import anyio.to_thread

from .cachekey import cache_key
from .encoder import encode
from .errors import AssetError, OutputTooLarge
from .fetcher import CardRequests, Fetcher
from .params import MAX_OUTPUT_BYTES, MAX_OUTPUT_NAME, CardParams, Output, image_names
from .rendering import Renderer
from .singleflight import SingleFlight
from .store import Store
from .templates import TemplateSet

log = logging.getLogger("ogproxy.cards")

# Where a request's image came from, as X-Cache says it: the cache, its own render, or
# a render it waited for (another request's here, or another worker process's).
# DEGRADED: rendered (or waited for) without an asset that failed, and kept nowhere.
Source = Literal["HIT", "MISS", "WAIT", "DEGRADED"]


async def _fit(image: bytes, output: Output) -> bytes:
    """``image`` within MAX_OUTPUT_BYTES: a lossless PNG over it is encoded again with a
    256-colour palette (about a third of the bytes); OutputTooLarge if it still does not fit."""
    if len(image) <= MAX_OUTPUT_BYTES:
        return image
    size, tried = len(image), ""
    if output.format == "png" and not output.palette:
        smaller = await anyio.to_thread.run_sync(lambda: encode(image, "png", palette=True))
        if len(smaller) <= MAX_OUTPUT_BYTES:
            log.info(
                "a %s-byte lossless PNG is over %s: served with a palette (%s bytes)",
                f"{size:,}",
                MAX_OUTPUT_NAME,
                f"{len(smaller):,}",
            )
            return smaller
        size, tried = len(smaller), " even with a 256-colour palette"
    advice = {
        "png": "JPEG or WebP",
        "jpeg": "a lower quality, WebP",
        "webp": "a lower quality",
    }[output.format]
    raise OutputTooLarge(
        f"The rendered image is {size:,} bytes{tried}, over the {MAX_OUTPUT_NAME} limit "
        f"that X and LinkedIn set for a shared image; try {advice}, or a smaller size."
    )


@dataclass(frozen=True)
class CardImage:
    """A card's image and where it came from."""

    body: bytes  # the encoded image, in the format the request asked for
    source: Source
    render_ms: float | None = None  # for the one request that rendered it
    failed: AssetError | None = None  # DEGRADED: the first asset it was rendered without


def card_key(templates: TemplateSet, fonts: str, params: CardParams, output: Output) -> str:
    """The content address of a card: its template's source, the fonts, params, output."""
    return cache_key(templates.templates[params.template], params, output, fonts)


@dataclass(frozen=True)
class Design:
    """What a card is made with besides its parameters: the templates and the fonts.

    One value, replaced whole by the dev reloader (reload.py): a request keys and renders
    with the one it began with, so a key never names an image of another design.
    """

    templates: TemplateSet
    fonts: str = ""  # fingerprint of OGPROXY_FONTS_DIR, part of every cache key

    def key(self, params: CardParams, output: Output) -> str:
        return card_key(self.templates, self.fonts, params, output)


@dataclass
class Cards:
    design: Design  # the templates and fonts now (a dev reload swaps it: reload.py)
    store: Store
    renderer: Renderer
    fetcher: Fetcher  # everything a card loads, template images included
    lock_hold: float = 30.0  # seconds another worker's render lock is waited for, at most
    on_render: Callable[[float], None] | None = None  # seconds of each render, for metrics
    render_timeout: float = 10.0  # seconds for the template and the browser together
    degrade: bool = True  # an asset that fails: render without it (else the render's error)
    on_degraded: Callable[[], None] | None = None  # each card served degraded, for metrics
    flights: SingleFlight[CardImage] = field(default_factory=SingleFlight)

    async def get_or_render(
        self, key: str, params: CardParams, output: Output, design: Design | None = None
    ) -> CardImage:
        """The image of ``key``, rendered here at most once. ``design``: the one ``key`` was
        computed with (``design.key(params, output)``), if not the current one."""
        design = self.design if design is None else design
        cached = self.store.get_memory(key)
        if cached is not None:
            return CardImage(cached, "HIT")
        result, leader = await self.flights.run(
            key, lambda: self._render_once(key, params, output, design.templates)
        )
        if leader or result.source == "HIT":
            return result
        if result.source == "DEGRADED":  # the waiters' answer must say so too
            return replace(result, render_ms=None)
        return CardImage(result.body, "WAIT")

    async def _render_once(
        self, key: str, params: CardParams, output: Output, templates: TemplateSet
    ) -> CardImage:
        # Re-check inside the flight: another request may have stored it meanwhile, and
        # another worker process may be rendering it right now (the lock waits for it).
        cached = await self.store.get(key, output.format)
        if cached is not None:
            return CardImage(cached, "HIT")
        # Fetched before taking the lock: a slow image origin must not hold the key
        # against the other workers.
        fetch = self.fetcher.card(strict=not self.degrade)
        card = await self._inline_images(params, templates, fetch)
        async with self.store.render_lock(key, hold=self.lock_hold):
            cached = await self.store.get(key, output.format, recheck=True)
            if cached is not None:  # another process rendered it while we waited
                return CardImage(cached, "WAIT")
            started = time.perf_counter()
            # Template rendering counts against the render timeout: it runs the operator's
            # templates, which can loop (they stop themselves at the deadline).
            deadline = time.monotonic() + self.render_timeout
            doc = await anyio.to_thread.run_sync(
                lambda: templates.render(
                    card, width=output.width, height=output.height, deadline=deadline
                )
            )
            try:
                image = await self.renderer.render(doc, output, fetch=fetch, deadline=deadline)
            finally:
                fetch.log_summary()  # one line for the card's failed assets, however many
            seconds = time.perf_counter() - started
            if self.on_render is not None:
                self.on_render(seconds)
            image = await _fit(image, output)
            render_ms = round(seconds * 1000, 1)
            if fetch.failures:  # only a degrading card gets here with any
                if self.on_degraded is not None:
                    self.on_degraded()
                return CardImage(image, "DEGRADED", render_ms, failed=fetch.failures[0])
            await self.store.put(key, output.format, image)
        return CardImage(image, "MISS", render_ms=render_ms)

    async def _inline_images(
        self, params: CardParams, templates: TemplateSet, fetch: CardRequests
    ) -> CardParams:
        """The card with its image parameters as ``data:`` URIs; one that fails is left
        out of a degrading card (and recorded on ``fetch``), else it is the error."""
        images = image_names(params, templates.specs[params.template])
        if not images:
            return params
        extra = []
        for name, value in params.extra:
            if name in images:
                try:
                    value = await self.fetcher.inline(name, value)
                except AssetError as exc:  # a refused URL is an InvalidParam, never this
                    if fetch.strict:
                        raise
                    fetch.record(exc)
                    value = ""
            extra.append((name, value))
        return replace(params, extra=tuple(extra))
