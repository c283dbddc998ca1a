"""uvicorn's httptools protocol with a bound on the request head, in bytes and in time.

LimitsMiddleware refuses big headers, but only once the parser has handed them over:
httptools grows a header value by concatenation, so one 80 MiB header cost 8.4 s of
CPU before any limit applied, and a client that never finishes its headers held its
connection open for ever (uvicorn times out idle keep-alive connections, not slow
ones). Here the head is cut off at the socket: past MAX_HEAD_BYTES without the blank
line that ends it, the answer is 431; past the head timeout (``OGPROXY_HEAD_TIMEOUT``),
the connection is closed.
Behind Caddy or a CDN the edge does this too; ``docker run -p 8000:8000`` has no edge.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import DEFAULT_HEAD_TIMEOUT
from .errors import error_body
from .limits import HEADERS_TOO_LARGE, MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET_BYTES

log = logging.getLogger("ogproxy.protocol")

# Request line and headers with their separators (": " and CRLF on each line), plus
# slack; beyond it LimitsMiddleware would refuse the request anyway.
MAX_HEAD_BYTES = MAX_TARGET_BYTES + MAX_HEADER_BYTES + 4 * MAX_HEADERS + 1024

_TOO_LARGE_BODY = error_body(431, HEADERS_TOO_LARGE)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\ncache-control: no-store\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
) % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)


# The head clock is checked by one sweep a second over the server's connections: a timer
# armed and cancelled on every request was a visible part of the hit path in profiles
# (bench/README, 2026-11-25).
SWEEP_EVERY = 1.0
_sweeps: weakref.WeakKeyDictionary[Any, asyncio.TimerHandle] = weakref.WeakKeyDictionary()


def _schedule(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    # The timer holds the server state weakly: a server stopped with a sweep pending is
    # freed with its state.
    _sweeps[state] = loop.call_later(SWEEP_EVERY, _sweep, loop, weakref.ref(state))


def _sweep(loop: asyncio.AbstractEventLoop, state_ref: weakref.ref[Any]) -> None:
    """Close every connection of one server whose head is past its time."""
    state = state_ref()
    if state is None:
        return
    now = loop.time()
    try:
        for conn in list(state.connections):
            if isinstance(conn, BoundedHttpToolsProtocol):
                try:
                    conn._check_head(now)
                except Exception:  # one broken connection must not end the sweeps
                    log.exception("checking a request head's time failed")
    finally:
        if state.connections:
            _schedule(loop, state)
        else:
            _sweeps.pop(state, None)  # the next connection starts it again


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Pass as ``uvicorn.run(..., http=protocol_for(head_timeout))``."""

    head_timeout = DEFAULT_HEAD_TIMEOUT  # seconds from connection or first byte to blank line

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        # When the current head started (the connection, or a request's first byte);
        # None between a head's end and the next request's first byte.
        self._head_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        if self.server_state not in _sweeps:
            _schedule(self.loop, self.server_state)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._head_since is None and (
            cycle is None or (cycle.response_complete and not cycle.more_body)
        ):
            # Bytes after a whole request and its answer are the next head, whatever the
            # parser makes of them: blank lines it skips (and which cancel uvicorn's
            # keep-alive timer) start the clock too. (The rest of a body the app did not
            # wait for is not a head.)
            self._head_since = self.loop.time()
        # Counted when the chunk starts inside a head: a head and its body in one chunk
        # is fine (the head ends in it), a head spread over many chunks adds up.
        if self._head_since is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._head_since is not None
            and self._head_bytes > MAX_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_since is None:
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_since = None
        self._head_bytes = 0
        super().on_headers_complete()

    def _check_head(self, now: float) -> None:
        since = self._head_since
        if since is None or now - since < self.head_timeout or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._head_since = now  # a pipelined head waits behind a response being made
            return
        self.transport.close()


_PREFIX = "BoundedHttpToolsProtocol_"


def protocol_for(head_timeout: float) -> str:
    """uvicorn's ``http`` option for a head timeout: an import string, so that every
    worker process (``--workers``, spawned) finds the same class by name."""
    return f"{__name__}:{_PREFIX}{round(head_timeout * 1000)}"


@functools.cache
def _with_timeout(milliseconds: int) -> type[BoundedHttpToolsProtocol]:
    attrs = {"head_timeout": milliseconds / 1000}
    return type(f"{_PREFIX}{milliseconds}", (BoundedHttpToolsProtocol,), attrs)


def __getattr__(name: str) -> Any:
    """``BoundedHttpToolsProtocol_<ms>``: the protocol with that head timeout."""
    if name.startswith(_PREFIX) and name[len(_PREFIX) :].isdigit():
        return _with_timeout(int(name[len(_PREFIX) :]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
