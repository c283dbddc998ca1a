"""Prometheus metrics: what came in, what it cost, and the state of the renderer and cache.

Counters and the render histogram are updated as requests go; gauges (queue depth,
browser restarts, cache size) are read from the live objects at scrape time. Metrics are
per process: with ``--workers N`` each scrape sees one worker, so a fleet of
single-worker instances behind a load balancer is the shape to monitor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .cards import Cards


class _Live(Collector):
    def __init__(self) -> None:
        self.cards: Cards | None = None

    def collect(self) -> Iterator[Metric]:
        cards = self.cards
        if cards is None:
            return
        renderer, store = cards.renderer, cards.store
        yield GaugeMetricFamily(
            "ogproxy_render_queue_depth", "Renders waiting for a page.", value=renderer.waiting
        )
        yield CounterMetricFamily(
            "ogproxy_browser_restarts",
            "Chromium relaunches after a crash.",
            value=renderer.restarts,
        )
        yield CounterMetricFamily(
            "ogproxy_renders", "Cards rendered by this process.", value=renderer.renders
        )
        yield GaugeMetricFamily(
            "ogproxy_memory_cache_bytes",
            "Bytes of images held in memory.",
            value=store.memory.bytes,
        )
        if store.disk is not None:
            yield GaugeMetricFamily(
                "ogproxy_cache_bytes", "Bytes in the disk cache.", value=store.disk.volume()
            )
            yield GaugeMetricFamily(
                "ogproxy_cache_entries", "Entries in the disk cache.", value=len(store.disk)
            )
        assets = CounterMetricFamily(
            "ogproxy_assets",
            "Images, stylesheets and fonts cards loaded, by outcome "
            "(fetched, cached, stale, refused, failed, timeout).",
            labels=["outcome"],
        )
        for outcome, count in sorted(cards.fetcher.counts.items()):
            assets.add_metric([outcome], count)
        yield assets
        yield CounterMetricFamily(
            "ogproxy_cache_errors",
            "Disk cache reads or writes that failed.",
            value=store.disk_errors,
        )


class Metrics:
    def __init__(self, routes: Iterable[str]) -> None:
        """``routes``: the paths requests are counted under; any other path is "other"."""
        self.routes = frozenset(routes)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ogproxy_requests",
            "HTTP requests by route, status and cache result.",
            ["route", "status", "cache"],
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "ogproxy_render_seconds",
            "Time to render a card (page, capture and encoding).",
            buckets=(0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._live = _Live()
        self.registry.register(self._live)

    def bind(self, cards: Cards | None) -> None:
        self._live.cards = cards

    def request(self, path: str, status: int, cache: str | None) -> None:
        route = path if path in self.routes else "other"
        self.requests.labels(route, str(status), cache or "").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
