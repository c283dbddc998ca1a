"""Answering repeat hits without the framework.

A request whose path and query were verified, parsed and served before maps to its
cache key. When it arrives again and the image is in memory, the answer goes out from
here, with no signature check, parsing or routing: the mapping exists only because that
query passed all of them once. Anything else, and any entry not in memory, goes down the
full request path.

Only canonical spellings are remembered with a key (app.py), one per signed card, so the
map is bounded by cards, not by the many spellings that verify; it is bounded by bytes
as well as entries, so many signed URLs with 4 KiB queries cannot grow it past its
budget. A query in another spelling (parameters in another order, ``+`` for ``%20``) is
looked up by its canonical spelling: it verifies exactly as that one did, because a
signature covers nothing but the decoded pairs (signing.canonical_spelling). Working
that out costs ~20 us, seven times a whole hit (both measured in-process), so the
spellings that were hits are remembered too, in a map of their own with a small byte
budget: a page links a card in one spelling, which then comes again and again, while any
number of spellings of one URL only push each other out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .delivery import image_answer
from .memtier import MemoryLRU
from .signing import canonical_spelling

if TYPE_CHECKING:
    from .store import Store


# What one entry costs beyond its query bytes: two tuples, the path and key strings and
# the dict slot (~300 bytes with a 64-hex key, measured with tracemalloc).
_ENTRY_OVERHEAD = 400
DEFAULT_MAX_BYTES = 16 * 2**20  # ~70,000 typical entries (~240-byte queries)


class KnownQueries:
    """A bounded map of ``(path, raw query) -> (cache key, media type)`` of verified requests."""

    def __init__(self, max_entries: int = 100_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._keys: dict[tuple[str, bytes], tuple[str, bytes]] = {}

    def get(self, path: str, query: bytes) -> tuple[str, bytes] | None:
        return self._keys.get((path, query))

    def remember(self, path: str, query: bytes, key: str, media_type: str = "image/png") -> None:
        if (path, query) in self._keys:
            return
        self.bytes += _ENTRY_OVERHEAD + len(query)
        self._keys[(path, query)] = (key, media_type.encode())
        while len(self._keys) > self.max_entries or self.bytes > self.max_bytes:
            _, old_query = oldest = next(iter(self._keys))  # oldest first
            del self._keys[oldest]
            self.bytes -= _ENTRY_OVERHEAD + len(old_query)

    def clear(self) -> None:
        """Forget every query (their keys are of templates that were replaced)."""
        self._keys.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._keys)


# What one spelling costs beyond its bytes and its canonical one's: the two bytes objects'
# headers and the ordered dict's slot and link (~140 bytes, measured with tracemalloc),
# and room for the allocator's rounding.
_SPELLING_OVERHEAD = 250
DEFAULT_SPELLING_BYTES = 2**20  # ~1,400 spellings of ~250-byte queries


def _spelling_bytes(query: bytes, canonical: bytes) -> int:
    return _SPELLING_OVERHEAD + len(query) + len(canonical)


class Spellings(MemoryLRU[bytes]):
    """A bounded map of ``raw query -> canonical spelling``, least recently used out first.

    Only spellings whose canonical one was a known query are added (HitMiddleware), so
    it holds queries that verify; ``canonical_spelling`` depends on nothing else, so an
    entry never goes stale.
    """

    def __init__(self, max_bytes: int = DEFAULT_SPELLING_BYTES) -> None:
        super().__init__(max_bytes, _spelling_bytes)


class HitMiddleware:
    def __init__(
        self, app: ASGIApp, known: KnownQueries, store: Store, immutable: bool = True
    ) -> None:
        self.app = app
        self.known = known
        self.store = store
        self.immutable = immutable  # False under --dev (delivery.image_answer)
        self.spellings = Spellings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path, query = scope["path"], scope["query_string"]
            known = self.known.get(path, query)
            if known is None and self.known:
                known = self._respelled(path, query)
            if known is not None:
                key, media_type = known
                body = self.store.get_memory(key)
                if body is not None:
                    await self._respond(scope, send, key, media_type, body)
                    return
        await self.app(scope, receive, send)

    def _respelled(self, path: str, query: bytes) -> tuple[str, bytes] | None:
        """The entry of the known query that ``query`` is another spelling of, if any."""
        spelling = self.spellings.get(query)
        if spelling is not None:
            return self.known.get(path, spelling)
        spelling = canonical_spelling(query)
        if spelling is None:
            return None
        known = self.known.get(path, spelling)
        if known is not None:
            self.spellings.put(query, spelling)
        return known

    async def _respond(
        self, scope: Scope, send: Send, key: str, media_type: bytes, body: bytes
    ) -> None:
        status, headers, payload = image_answer(
            scope["headers"],
            scope["method"],
            key,
            media_type,
            body,
            b"HIT",
            immutable=self.immutable,
        )
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": payload})
