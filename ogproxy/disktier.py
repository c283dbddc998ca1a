"""The render cache on disk: a size-limited diskcache of sealed entries.

The disk is a cache, never a dependency: an entry is sealed to its card (key and format)
and checked on every read (integrity.py; a damaged, swapped or foreign one is dropped,
counted and rendered again), and a full, read-only or broken cache directory only costs
re-renders, logged, never a failed request. diskcache is synchronous: the async methods
run it in a worker thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

import anyio.to_thread
import diskcache

from .formats import Format
from .integrity import CardSeal
from .tierstats import TierStats

log = logging.getLogger("ogproxy.store")

# Every error the disk or SQLite can throw at us: full, read-only, gone, locked, corrupt.
DISK_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


def _close_to_others(directory: Path) -> None:
    """No access for others to the cache (every card, private HTML's included): Chromium
    may run as a user of its own (sandbox.py), which must not read it. The group keeps
    its access (systemd's CacheDirectoryMode=0750)."""
    info = directory.stat()
    if info.st_mode & 0o007 and info.st_uid == os.geteuid():
        try:
            directory.chmod(stat.S_IMODE(info.st_mode) & 0o770)
        except OSError as exc:
            log.warning("cache directory %s is open to others: %s", directory, exc)
        else:
            log.info("cache directory %s: access for others removed", directory)


class DiskTier:
    """``cache`` is None when the directory cannot be used: every read is then a miss."""

    def __init__(self, directory: Path, size_limit: int | None, seal: CardSeal | None) -> None:
        """``size_limit`` None keeps the limit the cache directory already has; ``seal``
        None (the cache commands) reads and writes no card."""
        self.directory = directory
        self.seal = seal
        self.stats = TierStats()
        self.errors = 0  # reads and writes that failed
        self.cache: diskcache.Cache | None
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _close_to_others(directory)
            limit = {} if size_limit is None else {"size_limit": size_limit}
            self.cache = diskcache.Cache(str(directory), **limit)
        except DISK_ERRORS as exc:
            log.error(
                "cache directory %s unusable, keeping renders in memory only: %s", directory, exc
            )
            self.cache = None

    @property
    def usable(self) -> bool:
        return self.cache is not None

    async def get(self, key: str, fmt: Format, *, count: bool = True) -> bytes | None:
        """The card ``key`` in ``fmt`` if its entry is intact, or None; ``count``: a
        lookup for the metrics."""
        if self.cache is None:
            return None
        started = time.perf_counter()
        value = await anyio.to_thread.run_sync(self._read, key, fmt)
        if count:
            self.stats.count("miss" if value is None else "hit", time.perf_counter() - started)
        return value

    async def put(self, key: str, fmt: Format, value: bytes) -> None:
        if self.cache is not None:
            await anyio.to_thread.run_sync(self._write, key, fmt, value)

    def _read(self, key: str, fmt: Format) -> bytes | None:
        assert self.cache is not None and self.seal is not None
        try:
            sealed = self.cache.get(key)
        except DISK_ERRORS as exc:
            self.errors += 1
            self.stats.errors += 1
            log.warning("cache read of %s failed, rendering instead: %s", key[:12], exc)
            return None
        if sealed is None:
            return None
        value = self.seal.unseal(key, fmt, sealed)
        if value is None:
            self.stats.rejected += 1
            log.warning(
                "cache entry %s failed its check (damaged, not this card or %s, or sealed "
                "with another secret or an older ogproxy); rendering it again",
                key[:12],
                fmt,
            )
            self._delete(key)
        return value

    def _write(self, key: str, fmt: Format, value: bytes) -> None:
        assert self.cache is not None and self.seal is not None
        try:
            self.cache.set(key, self.seal.seal(key, fmt, value))
        except DISK_ERRORS as exc:
            self.errors += 1
            log.warning("cache write of %s failed, serving it anyway: %s", key[:12], exc)

    def _delete(self, key: str) -> None:
        assert self.cache is not None
        try:
            self.cache.delete(key)
        except DISK_ERRORS as exc:
            log.warning("could not drop cache entry %s: %s", key[:12], exc)

    def usage(self) -> dict[str, object]:
        """Entries, bytes and limit of the disk cache (for `ogproxy cache stats`)."""
        if self.cache is None:
            return {"directory": str(self.directory), "usable": False}
        return {
            "directory": str(self.directory),
            "usable": True,
            "entries": len(self.cache),
            "bytes": self.cache.volume(),
            "size_limit": self.cache.size_limit,
        }

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        return int(self.cache.clear()) if self.cache is not None else 0

    def prune(self, to_bytes: int) -> int:
        """Evict the oldest entries until the cache holds at most ``to_bytes``."""
        if self.cache is None:
            return 0
        limit = self.cache.size_limit
        self.cache.reset("size_limit", to_bytes)
        try:
            return int(self.cache.cull())
        finally:
            self.cache.reset("size_limit", limit)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
