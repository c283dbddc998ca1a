"""uvicorn's httptools protocol with a bound on the request head, in bytes and in time.

LimitsMiddleware refuses big headers, but only once the parser has handed them over:
httptools grows a header value by concatenation, so one 80 MiB header cost 8.4 s of
CPU before any limit applied, and a client that never finishes its headers held its
connection open for ever (uvicorn times out idle keep-alive connections, not slow
ones). Here the head is cut off at the socket: past MAX_HEAD_BYTES without the blank
line that ends it, the answer is 431; past HEAD_TIMEOUT, the connection is closed.
Behind Caddy or a CDN the edge does this too; ``docker run -p 8000:8000`` has no edge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET_BYTES

# Request line and headers with their separators (": " and CRLF on each line), plus
# slack; beyond it LimitsMiddleware would refuse the request anyway.
MAX_HEAD_BYTES = MAX_TARGET_BYTES + MAX_HEADER_BYTES + 4 * MAX_HEADERS + 1024
HEAD_TIMEOUT = 10.0  # seconds from connection (or a request's first byte) to its blank line

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\ncache-control: no-store\r\n"
    b"content-length: 51\r\nconnection: close\r\n\r\n"
    b'{"error":"Request headers too large.","status":431}'
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Pass as ``uvicorn.run(..., http="ogproxy.protocol:BoundedHttpToolsProtocol")``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a request's first byte (or the connection) and its end
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted when the chunk starts inside a head: a head and its body in one chunk
        # is fine (the head ends in it), a head spread over many chunks adds up.
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._head_deadline = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined head waits behind a response still being made
            return
        self.transport.close()
