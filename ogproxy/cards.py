"""Getting a card's PNG: from memory, from disk, from the object store, or rendered once.

Identical misses in this process share one render (single flight); other worker
processes on the same cache dir wait for it through a lock in the cache itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import anyio.to_thread

from .assets import Assets
from .config import Settings
from .hits import KnownQueries
from .params import CardParams, Output
from .renderer import Renderer
from .singleflight import SingleFlight
from .store import Store
from .templates import TemplateSet


@dataclass(frozen=True)
class Result:
    png: bytes
    rendered: bool  # True for the one request that rendered it
    render_ms: float | None = None


@dataclass
class Cards:
    """Everything a request needs, created in the lifespan and kept on app.state."""

    settings: Settings
    secrets: tuple[str, ...]
    templates: TemplateSet
    store: Store
    renderer: Renderer
    output: Output  # server defaults for what a render produces
    assets: Assets
    fonts: str = ""  # fingerprint of OGPROXY_FONTS_DIR, part of every cache key
    on_render: Callable[[float], None] | None = None  # seconds of each render, for metrics
    flights: SingleFlight[Result] = field(default_factory=SingleFlight)
    known: KnownQueries = field(default_factory=KnownQueries)

    def output_for(self, fmt: str) -> Output:
        """The server's output defaults for one format (palette applies to PNG only)."""
        return replace(self.output, format=fmt, palette=self.output.palette and fmt == "png")  # type: ignore[arg-type]

    async def _inline_images(self, params: CardParams) -> CardParams:
        spec = self.templates.specs[params.template]
        images = {p.name for p in spec.params if p.kind == "image"}
        if not images or params.html is not None:
            return params
        extra = [
            (name, await self.assets.inline(name, value) if name in images else value)
            for name, value in params.extra
        ]
        return replace(params, extra=tuple(extra))

    async def get_or_render(self, key: str, params: CardParams, output: Output) -> Result:
        cached = self.store.get_memory(key)
        if cached is not None:
            return Result(cached, rendered=False)
        result, leader = await self.flights.run(key, lambda: self._render_once(key, params, output))
        return result if leader else Result(result.png, rendered=False)

    async def _render_once(self, key: str, params: CardParams, output: Output) -> Result:
        # Re-check inside the flight: another request may have stored it meanwhile, and
        # another worker process may be rendering it right now (the lock waits for it).
        cached = await self.store.get(key)
        if cached is not None:
            return Result(cached, rendered=False)
        async with self.store.render_lock(key, hold=self.settings.render_timeout * 3):
            cached = await self.store.get(key, recheck=True)
            if cached is not None:
                return Result(cached, rendered=False)
            card = await self._inline_images(params)
            doc = await anyio.to_thread.run_sync(
                lambda: self.templates.render(card, width=output.width, height=output.height)
            )
            started = time.perf_counter()
            png = await self.renderer.render(doc, output)
            seconds = time.perf_counter() - started
            if self.on_render is not None:
                self.on_render(seconds)
            render_ms = round(seconds * 1000, 1)
            await self.store.put(key, png)
        return Result(png, rendered=True, render_ms=render_ms)
