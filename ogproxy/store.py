"""The render cache: the hottest images in memory (memtier.py), a size-limited cache on
disk (disktier.py), and optionally a bucket shared by the fleet behind both
(objectstore.py).

Hits are served from memory when they can be (no thread hop, no disk read); a disk hit
is promoted to memory, an object-store hit to disk and memory. Memory holds only what
was checked: fresh renders, and disk entries and objects that passed their check, which
binds them to their card's key and format (integrity.py). Every tier is a cache, never a
dependency: its failures cost renders, never a failed request.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from .disktier import DiskTier
from .formats import Format
from .integrity import CardSeal
from .memtier import MemoryLRU
from .objectstore import ObjectTier
from .renderlock import render_lock
from .tierstats import TierStats


class Store:
    """Memory, then disk, then the object store: the tier chain of the render cache."""

    def __init__(
        self,
        directory: Path,
        *,
        size_limit: int | None,
        memory_bytes: int,
        seal: CardSeal,
        remote: ObjectTier | None = None,
    ) -> None:
        """``size_limit`` None keeps the limit the cache directory already has; ``seal``
        binds each stored card to its key and format."""
        self.seal = seal
        self.memory = MemoryLRU[str](memory_bytes)
        self.disk = DiskTier(directory, size_limit, seal)
        self.remote: ObjectTier | None = None
        self._memory_stats = TierStats()
        self.tiers = {"memory": self._memory_stats, "disk": self.disk.stats}
        if remote is not None:
            self.attach(remote)

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

    async def get(self, key: str, fmt: Format, *, recheck: bool = False) -> bytes | None:
        """The card ``key`` (in ``fmt``) from memory, else disk, else the object store.

        ``recheck``: looking again after waiting for another worker's render, which it
        left on the shared disk; the object store is not asked and nothing is counted.
        """
        value = self.memory.get(key)
        if value is None:
            value = await self.disk.get(key, fmt, count=not recheck)
            if value is not None:
                self.memory.put(key, value)
        if value is None and not recheck and self.remote is not None:
            value = await self.remote.get(key, fmt)
            if value is not None:
                await self._keep(key, fmt, value)
        return value

    async def put(self, key: str, fmt: Format, value: bytes) -> None:
        """Keep a new render here and upload it to the object store in the background."""
        await self._keep(key, fmt, value)
        if self.remote is not None:
            self.remote.enqueue(key, fmt, value)

    async def _keep(self, key: str, fmt: Format, value: bytes) -> None:
        self.memory.put(key, value)
        await self.disk.put(key, fmt, value)

    async def _adopt(self, key: str, fmt: Format, value: bytes) -> None:
        """Another instance stored ``key`` first (its object passed its check): serve it
        from now on, as the rest of the fleet does."""
        await self._keep(key, fmt, value)

    def render_lock(self, key: str, hold: float) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` against the other processes on this cache directory (renderlock.py)."""
        return render_lock(self.disk.cache, key, hold)

    def close(self) -> None:
        self.disk.close()
