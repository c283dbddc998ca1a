"""The render cache: a size-limited diskcache on disk, with the hottest PNGs in memory.

Hits are served from memory when they can be (no thread hop, no disk read); a disk hit
is promoted to memory. diskcache is synchronous, so disk I/O runs in a worker thread.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import anyio.to_thread
import diskcache


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


class Store:
    def __init__(self, directory: Path, *, size_limit: int, memory_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.disk = diskcache.Cache(str(directory), size_limit=size_limit)
        self.memory = MemoryLRU(memory_bytes)

    def get_memory(self, key: str) -> bytes | None:
        return self.memory.get(key)

    async def get(self, key: str) -> bytes | None:
        value = self.memory.get(key)
        if value is None:
            value = await anyio.to_thread.run_sync(self.disk.get, key)
            if value is not None:
                self.memory.put(key, value)
        return value

    async def put(self, key: str, value: bytes) -> None:
        self.memory.put(key, value)
        await anyio.to_thread.run_sync(self.disk.set, key, value)

    def close(self) -> None:
        self.disk.close()
