"""Fetched assets kept on disk, so a burst of cards with the same logo fetches it once.

Bodies are stored by their SHA-256 (two URLs with the same bytes share one entry), URLs
point at them with the media type and until when the origin said they are fresh. The
cache is bounded and evicts the least recently used entries. An entry is kept for
``STALE_FOR`` past its freshness so that an origin that is down does not break new cards.
Like the card store, the disk is a cache, never a dependency: a body is checked against
its address on every read (integrity.py), and errors or damage mean a miss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import diskcache

from . import integrity
from .disktier import DISK_ERRORS

log = logging.getLogger("ogproxy.fetcher")

DEFAULT_SIZE = 256 * 2**20  # 256 MiB of images and fonts
STALE_FOR = 7 * 86400.0  # seconds an expired asset may still stand in for a failing origin


@dataclass(frozen=True)
class Asset:
    url: str
    media_type: str  # without parameters, lower case
    body: bytes


@dataclass(frozen=True)
class Cached:
    asset: Asset
    fresh: bool


class AssetCache:
    def __init__(self, directory: Path | None, size_limit: int = DEFAULT_SIZE) -> None:
        self.disk: diskcache.Cache | None = None
        if directory is not None:
            try:
                self.disk = diskcache.Cache(
                    str(directory),
                    size_limit=size_limit,
                    eviction_policy="least-recently-used",
                    timeout=1,
                )
            except DISK_ERRORS as exc:
                log.warning("asset cache %s unusable, fetching every time: %s", directory, exc)

    async def get(self, url: str) -> Cached | None:
        if self.disk is None:
            return None
        return await anyio.to_thread.run_sync(self._read, url)

    async def put(self, asset: Asset, fresh_for: float) -> None:
        if self.disk is not None:
            await anyio.to_thread.run_sync(self._write, asset, fresh_for)

    def _read(self, url: str) -> Cached | None:
        assert self.disk is not None
        try:
            entry = self.disk.get(f"url:{url}")
            if not isinstance(entry, tuple) or len(entry) != 3:
                return None
            media_type, digest, fresh_until = entry
            body = integrity.at_address(self.disk.get(f"body:{digest}"), str(digest))
        except DISK_ERRORS as exc:
            log.warning("asset cache read failed: %s", exc)
            return None
        if body is None:
            return None  # evicted, or damaged on disk
        return Cached(Asset(url, str(media_type), body), fresh=time.time() < float(fresh_until))

    def _write(self, asset: Asset, fresh_for: float) -> None:
        assert self.disk is not None
        digest = integrity.address(asset.body)
        keep = fresh_for + STALE_FOR
        try:
            self.disk.set(f"body:{digest}", asset.body, expire=keep)
            self.disk.set(
                f"url:{asset.url}", (asset.media_type, digest, time.time() + fresh_for), expire=keep
            )
        except DISK_ERRORS as exc:
            log.warning("asset cache write failed: %s", exc)

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
