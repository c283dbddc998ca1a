"""The composition root: every long-lived part of ogproxy, built once from the settings.

``Service.build`` makes the parts (templates, the cache tiers, the asset fetcher, the
renderer, the render-once service, the fast-hit map, the metrics) and wires them
together; ``Service.running`` starts what has to run (the object store's uploaders, the
browser) and stops it again; ``swap`` replaces the templates and fonts (dev mode's
reloader, reload.py). The HTTP app (app.py) and ``ogproxy render`` (batch.py)
take the parts they need from here; nothing else constructs them.

The renderer is a parameter: Chromium by default, the test suite's fake where the
subject is HTTP rather than pixels.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import jinja2

from .cards import Cards, Design
from .config import Settings
from .errors import ConfigError
from .fetcher import Fetcher
from .fonts import fingerprint
from .hits import KnownQueries
from .integrity import CardSeal
from .metrics import Metrics
from .objectstore import ObjectTier
from .rendering import Renderer
from .store import Store
from .templates import TemplateSet


def load_templates(settings: Settings) -> TemplateSet:
    """The built-in and operator templates, or a ConfigError that names the problem."""
    try:
        return TemplateSet(*settings.template_dirs, trust=settings.trusted_templates)
    except (ValueError, jinja2.TemplateError) as exc:
        raise ConfigError(f"templates: {exc}") from exc


def chromium(settings: Settings) -> Renderer:
    """The production renderer, or a ConfigError when no browser can possibly be launched
    (imported here so that a fake-renderer app never loads Playwright's browser code)."""
    from .browser import preflight
    from .renderer import ChromiumRenderer

    preflight(settings.chromium)
    return ChromiumRenderer.for_settings(settings)


@dataclass(frozen=True)
class Service:
    settings: Settings
    store: Store
    fetcher: Fetcher
    renderer: Renderer
    cards: Cards
    known: KnownQueries  # the fast path's map of verified queries (hits.py)
    metrics: Metrics

    @classmethod
    def build(
        cls,
        settings: Settings,
        renderer: Renderer | None = None,
        templates: TemplateSet | None = None,
    ) -> Service:
        """Make the parts; nothing is started (see ``running``)."""
        templates = templates or load_templates(settings)
        renderer = renderer if renderer is not None else chromium(settings)
        store = Store(
            settings.cache_dir,
            size_limit=settings.cache_size,
            memory_bytes=settings.memory_cache,
            seal=CardSeal(settings.signing_secrets),
        )
        fetcher = Fetcher.for_settings(settings)
        metrics = Metrics(renderer, store, fetcher)
        cards = Cards(
            Design(templates, fingerprint(settings.fonts_dir)),
            store,
            renderer,
            fetcher,
            # A render hung in another worker is cut off after the timeout: wait a few.
            lock_hold=settings.render_timeout * 3,
            on_render=metrics.render_seconds.observe,
            render_timeout=settings.render_timeout,
            degrade=settings.asset_failure == "degrade",
            on_degraded=metrics.degraded_cards.inc,
        )
        return cls(settings, store, fetcher, renderer, cards, KnownQueries(), metrics)

    @property
    def design(self) -> Design:
        """The templates and fonts now: a request reads it once (a dev reload swaps it)."""
        return self.cards.design

    @property
    def templates(self) -> TemplateSet:
        return self.cards.design.templates

    def swap(self, design: Design) -> None:
        """Make cards with ``design`` from now on (dev mode's reloader, reload.py).

        The fast path's map goes with the old design: its queries name the old keys.
        """
        self.cards.design = design
        self.known.clear()

    @asynccontextmanager
    async def running(self, remote: ObjectTier | None = None) -> AsyncIterator[Service]:
        """Open the object store (``OGPROXY_STORE``) and start the renderer; close both after.

        The bucket is checked first: one that does not exist is a start-up error, before a
        browser is launched. A ``remote`` given by the caller (``ogproxy render``'s, which
        waits for its uploads) is the caller's to close.
        """
        owned = remote is None and self.settings.store is not None
        if owned:
            assert self.settings.store is not None
            remote = await ObjectTier.open(self.settings.store, os.environ, self.store.seal)
        if remote is not None:
            self.store.attach(remote)
        try:
            await self.renderer.start()
            if owned and remote is not None:
                remote.start()
            try:
                yield self
            finally:
                await self.renderer.stop()
        finally:
            await self.fetcher.close()
            if owned and remote is not None:
                await remote.close()  # the queued uploads, within a deadline
            self.store.close()
