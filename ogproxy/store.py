"""The render cache: a size-limited diskcache on disk, with the hottest images in memory,
and optionally a bucket shared by the fleet behind both (ogproxy/objectstore.py).

Hits are served from memory when they can be (no thread hop, no disk read); a disk hit
is promoted to memory, an object-store hit to disk and memory. diskcache is synchronous,
so disk I/O runs in a worker thread.

The disk is a cache, never a dependency: an entry is stored with a digest and checked on
every read (a truncated or corrupted one is dropped and rendered again), and a full,
read-only or broken cache directory only costs re-renders, logged, never a failed
request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import diskcache

from .objectstore import ObjectTier
from .tiers import TierStats

log = logging.getLogger("ogproxy.store")

_DIGEST = 16  # bytes of BLAKE2b in front of each stored image
# Every error the disk or SQLite can throw at us: full, read-only, gone, locked, corrupt.
DISK_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class MemoryLRU:
    """A byte-bounded LRU of immutable values."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # one huge image must not flush the whole hot set
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._items[key] = value
        self.bytes += len(value)
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


def _seal(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=_DIGEST).digest() + value


def _open(sealed: object) -> bytes | None:
    """The value inside a stored entry, or None if it is not intact."""
    if not isinstance(sealed, bytes) or len(sealed) <= _DIGEST:
        return None
    digest, value = sealed[:_DIGEST], sealed[_DIGEST:]
    if hashlib.blake2b(value, digest_size=_DIGEST).digest() != digest:
        return None
    return value


class Store:
    def __init__(
        self,
        directory: Path,
        *,
        size_limit: int | None,
        memory_bytes: int,
        remote: ObjectTier | None = None,
    ) -> None:
        """``size_limit`` None keeps the limit the cache directory already has."""
        self.directory = directory
        self.memory = MemoryLRU(memory_bytes)
        self.remote = remote
        self._memory_stats = TierStats()
        self.tiers = {"memory": self._memory_stats, "disk": TierStats()}
        if remote is not None:
            self.attach(remote)
        self.disk_errors = 0
        self.corrupt = 0
        self.disk: diskcache.Cache | None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            limit = {} if size_limit is None else {"size_limit": size_limit}
            self.disk = diskcache.Cache(str(directory), **limit)
        except DISK_ERRORS as exc:
            log.error(
                "cache directory %s unusable, keeping renders in memory only: %s", directory, exc
            )
            self.disk = None

    def attach(self, remote: ObjectTier) -> None:
        """Put the fleet's bucket behind memory and disk."""
        self.remote = remote
        self.tiers["object"] = remote.stats
        remote.on_adopt = self._adopt

    def get_memory(self, key: str) -> bytes | None:
        value = self.memory.get(key)
        # Counted inline: this is the hot path of every repeat hit.
        if value is None:
            self._memory_stats.misses += 1
        else:
            self._memory_stats.hits += 1
        return value

    async def get(self, key: str, *, recheck: bool = False) -> bytes | None:
        """From memory, else disk, else the object store.

        ``recheck``: looking again after waiting for another worker's render, which it
        left on the shared disk; the object store is not asked and nothing is counted.
        """
        value = self.memory.get(key)
        if value is None and self.disk is not None:
            started = time.perf_counter()
            value = await anyio.to_thread.run_sync(self._read, key)
            if not recheck:
                seconds = time.perf_counter() - started
                self.tiers["disk"].count("miss" if value is None else "hit", seconds)
            if value is not None:
                self.memory.put(key, value)
        if value is None and not recheck and self.remote is not None:
            value = await self.remote.get(key)
            if value is not None:
                await self._keep(key, value)
        return value

    async def put(self, key: str, value: bytes) -> None:
        """Keep a new render here and upload it to the object store in the background."""
        await self._keep(key, value)
        if self.remote is not None:
            self.remote.enqueue(key, value)

    async def _keep(self, key: str, value: bytes) -> None:
        self.memory.put(key, value)
        if self.disk is not None:
            await anyio.to_thread.run_sync(self._write, key, value)

    async def _adopt(self, key: str, value: bytes) -> None:
        """Another instance stored ``key`` first: serve its object from now on, as the
        rest of the fleet does."""
        await self._keep(key, value)

    def _read(self, key: str) -> bytes | None:
        assert self.disk is not None
        try:
            sealed = self.disk.get(key)
        except DISK_ERRORS as exc:
            self.disk_errors += 1
            self.tiers["disk"].errors += 1
            log.warning("cache read of %s failed, rendering instead: %s", key[:12], exc)
            return None
        if sealed is None:
            return None
        value = _open(sealed)
        if value is None:
            self.corrupt += 1
            log.warning("cache entry %s is corrupted; dropping it", key[:12])
            self._delete(key)
        return value

    def _write(self, key: str, value: bytes) -> None:
        assert self.disk is not None
        try:
            self.disk.set(key, _seal(value))
        except DISK_ERRORS as exc:
            self.disk_errors += 1
            log.warning("cache write of %s failed, serving it anyway: %s", key[:12], exc)

    def _delete(self, key: str) -> None:
        assert self.disk is not None
        try:
            self.disk.delete(key)
        except DISK_ERRORS as exc:
            log.warning("could not drop cache entry %s: %s", key[:12], exc)

    @asynccontextmanager
    async def render_lock(self, key: str, hold: float) -> AsyncIterator[None]:
        """Hold ``key`` against other processes sharing this cache (several workers).

        Waits while another process holds it, at most ``hold`` seconds: a lock left by a
        process that died expires after that. Without a usable disk it does not wait.
        """
        # A token of this acquisition: a render that outlives its lock must not release
        # the lock that another process took after it expired.
        name, token = f"ogproxy-lock:{key}", f"{os.getpid()}:{secrets.token_hex(8)}"
        deadline = time.monotonic() + hold
        held = False
        disk = self.disk
        while disk is not None and time.monotonic() < deadline:
            try:
                # An empty Cache is falsy (it has a length): compare with None, always.
                held = await anyio.to_thread.run_sync(lambda: disk.add(name, token, expire=hold))
            except DISK_ERRORS:
                break
            if held:
                break
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            if held and disk is not None:
                await anyio.to_thread.run_sync(self._release, disk, name, token)

    def _release(self, disk: diskcache.Cache, name: str, token: str) -> None:
        """Delete the lock ``name`` if it still holds ``token`` (compare and delete, atomic)."""
        try:
            with disk.transact():
                if disk.get(name) == token:
                    disk.delete(name)
        except DISK_ERRORS as exc:
            log.warning("could not release render lock %s: %s", name[13:25], exc)

    def stats(self) -> dict[str, object]:
        """Entries, bytes and limit of the disk cache (for `ogproxy cache stats`)."""
        if self.disk is None:
            return {"directory": str(self.directory), "usable": False}
        return {
            "directory": str(self.directory),
            "usable": True,
            "entries": len(self.disk),
            "bytes": self.disk.volume(),
            "size_limit": self.disk.size_limit,
        }

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        self.memory = MemoryLRU(self.memory.max_bytes)
        return int(self.disk.clear()) if self.disk is not None else 0

    def prune(self, to_bytes: int) -> int:
        """Evict the oldest entries until the cache holds at most ``to_bytes``."""
        if self.disk is None:
            return 0
        limit = self.disk.size_limit
        self.disk.reset("size_limit", to_bytes)
        try:
            return int(self.disk.cull())
        finally:
            self.disk.reset("size_limit", limit)

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
