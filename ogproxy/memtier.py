"""The hottest images in memory: a byte-bounded LRU, the first tier of the render cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K", str, bytes)


def _value_bytes(key: object, value: bytes) -> int:
    return len(value)


class MemoryLRU(Generic[K]):
    """A byte-bounded LRU of immutable values; ``cost`` says what an entry counts against
    the bound (by default its value's bytes)."""

    def __init__(self, max_bytes: int, cost: Callable[[K, bytes], int] = _value_bytes) -> None:
        self.max_bytes = max_bytes
        self.cost: Callable[[K, bytes], int] = cost
        self.bytes = 0
        self._items: OrderedDict[K, bytes] = OrderedDict()

    def get(self, key: K) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: bytes) -> None:
        size = self.cost(key, value)
        if size > self.max_bytes // 4:
            return  # one huge entry must not flush the whole hot set
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= self.cost(key, old)
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            evicted_key, evicted = self._items.popitem(last=False)
            self.bytes -= self.cost(evicted_key, evicted)

    def __len__(self) -> int:
        return len(self._items)
