"""Prometheus metrics: what came in, what it cost, and the state of the renderer and cache.

Counters and the render histogram are updated as requests go; gauges (queue depth,
browser restarts, cache size) are read from the live objects at scrape time. Metrics are
per process: with ``--workers N`` each scrape sees one worker, so a fleet of
single-worker instances behind a load balancer is the shape to monitor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from starlette.types import Scope

from .formats import ENDPOINTS

if TYPE_CHECKING:
    from .fetcher import Fetcher
    from .rendering import Renderer
    from .store import Store


class _Live(Collector):
    def __init__(self, renderer: Renderer, store: Store, fetcher: Fetcher) -> None:
        self.renderer, self.store, self.fetcher = renderer, store, fetcher

    def collect(self) -> Iterator[Metric]:
        renderer, store = self.renderer, self.store
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
        if (disk := store.disk.cache) is not None:
            yield GaugeMetricFamily(
                "ogproxy_cache_bytes", "Bytes in the disk cache.", value=disk.volume()
            )
            yield GaugeMetricFamily(
                "ogproxy_cache_entries", "Entries in the disk cache.", value=len(disk)
            )
        assets = CounterMetricFamily(
            "ogproxy_assets",
            "Images, stylesheets and fonts cards loaded, by outcome "
            "(fetched, cached, stale, refused, failed, timeout).",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.fetcher.counts.items()):
            assets.add_metric([outcome], count)
        yield assets
        yield CounterMetricFamily(
            "ogproxy_cache_errors",
            "Disk cache reads or writes that failed.",
            value=store.disk.errors,
        )
        yield from _tiers(store)


def _tiers(store: Store) -> Iterator[Metric]:
    """Per cache tier (memory, disk, object): lookups by result and time spent."""
    lookups = CounterMetricFamily(
        "ogproxy_cache_tier_lookups",
        "Cache lookups by tier (memory, disk, object) and result (hit, miss, error).",
        labels=["tier", "result"],
    )
    seconds = SummaryMetricFamily(
        "ogproxy_cache_tier_seconds",
        "Time spent in disk and object-store lookups.",
        labels=["tier"],
    )
    for tier, stats in store.tiers.items():
        for result, value in (("hit", stats.hits), ("miss", stats.misses), ("error", stats.errors)):
            lookups.add_metric([tier, result], value)
        if tier != "memory":  # memory lookups take under a microsecond and are not timed
            seconds.add_metric([tier], count_value=stats.lookups, sum_value=stats.seconds)
    yield lookups
    yield seconds
    rejected = CounterMetricFamily(
        "ogproxy_cache_rejected",
        "Stored cards that failed their check (damaged, another card's, another format's, "
        "another secret's or an older ogproxy's), dropped and rendered again, by tier.",
        labels=["tier"],
    )
    for tier, stats in store.tiers.items():
        if tier != "memory":  # memory holds only what was checked
            rejected.add_metric([tier], stats.rejected)
    yield rejected
    remote = store.remote
    if remote is None:
        return
    for name, help_text, value in (
        ("uploads", "Cards this process created in the object store.", remote.uploads),
        ("upload_conflicts", "Uploads that found the card already there.", remote.conflicts),
        (
            "upload_failures",
            "Uploads given up: retries spent, queue full or shutdown.",
            remote.upload_failures,
        ),
        ("breaker_opened", "Times the object-store circuit breaker opened.", remote.breaker.opened),
    ):
        yield CounterMetricFamily(f"ogproxy_object_store_{name}", help_text, value=value)
    yield GaugeMetricFamily(
        "ogproxy_object_store_upload_queue", "Uploads queued or in flight.", value=remote.waiting
    )
    yield GaugeMetricFamily(
        "ogproxy_object_store_breaker_open",
        "1 while the object store is skipped after repeated failures.",
        value=int(remote.breaker.is_open),
    )


class Metrics:
    def __init__(self, renderer: Renderer, store: Store, fetcher: Fetcher) -> None:
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
        self.degraded_cards = Counter(
            "ogproxy_degraded_cards",
            "Cards served without an image, stylesheet or font that failed (never cached).",
            registry=self.registry,
        )
        self.registry.register(_Live(renderer, store, fetcher))

    def request(self, scope: Scope, status: int, cache: str | None) -> None:
        """Count a request under its route's path: the one routing matched, the image
        path of a fast hit (answered before routing), else "other"."""
        route = scope.get("route")
        path = getattr(route, "path", None) or scope["path"]
        name = path if route is not None or path in ENDPOINTS else "other"
        self.requests.labels(name, str(status), cache or "").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
