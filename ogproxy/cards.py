"""The render-once service: a card's image from memory, from disk, from the object store,
or rendered exactly once.

Identical misses in this process share one render (single flight); other worker
processes on the same cache dir wait for it through a lock in the cache itself. It knows
nothing of HTTP, nor of Chromium: the renderer is any ``rendering.Renderer``. The
composition root (service.py) builds it for the server and for ``ogproxy render``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import anyio.to_thread

from .cachekey import cache_key
from .errors import OutputTooLarge
from .fetcher import Fetcher
from .params import MAX_OUTPUT_BYTES, CardParams, Output, image_names
from .rendering import Renderer
from .singleflight import SingleFlight
from .store import Store
from .templates import TemplateSet

# Where a request's image came from, as X-Cache says it: the cache, its own render, or
# a render it waited for (another request's here, or another worker process's).
Source = Literal["HIT", "MISS", "WAIT"]


def _check_size(image: bytes, output: Output) -> None:
    if len(image) > MAX_OUTPUT_BYTES:
        hint = "palette=1, " if output.format == "png" and not output.palette else ""
        raise OutputTooLarge(
            f"The rendered image is {len(image):,} bytes, over the "
            f"{MAX_OUTPUT_BYTES // 2**20} MiB limit; try {hint}JPEG or WebP, or a smaller size."
        )


@dataclass(frozen=True)
class CardImage:
    """A card's image and where it came from."""

    body: bytes  # the encoded image, in the format the request asked for
    source: Source
    render_ms: float | None = None  # for the one request that rendered it


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
        return CardImage(result.body, "WAIT")

    async def _render_once(
        self, key: str, params: CardParams, output: Output, templates: TemplateSet
    ) -> CardImage:
        # Re-check inside the flight: another request may have stored it meanwhile, and
        # another worker process may be rendering it right now (the lock waits for it).
        cached = await self.store.get(key)
        if cached is not None:
            return CardImage(cached, "HIT")
        # Fetched before taking the lock: a slow image origin must not hold the key
        # against the other workers.
        card = await self._inline_images(params, templates)
        async with self.store.render_lock(key, hold=self.lock_hold):
            cached = await self.store.get(key, recheck=True)
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
            fetch = self.fetcher.card()
            try:
                image = await self.renderer.render(doc, output, fetch=fetch, deadline=deadline)
            finally:
                fetch.log_summary()  # one line for the card's failed assets, however many
            seconds = time.perf_counter() - started
            if self.on_render is not None:
                self.on_render(seconds)
            _check_size(image, output)
            await self.store.put(key, image)
        return CardImage(image, "MISS", render_ms=round(seconds * 1000, 1))

    async def _inline_images(self, params: CardParams, templates: TemplateSet) -> CardParams:
        images = image_names(params, templates.specs[params.template])
        if not images:
            return params
        extra = [
            (name, await self.fetcher.inline(name, value) if name in images else value)
            for name, value in params.extra
        ]
        return replace(params, extra=tuple(extra))
