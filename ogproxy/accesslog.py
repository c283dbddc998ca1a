"""One log line per request, without secrets (and a hook that counts it for the metrics).

The line (JSON, or text with ``OGPROXY_LOG_FORMAT=text``, like every other log line) has
the time, method, path, status, cache result, bytes, duration, the client's address (the
one uvicorn took from ``X-Forwarded-For`` when the peer is a trusted proxy), its user
agent, a request id (also sent as ``X-Request-ID``) and, for a render, the render time
and the first 12 hex digits of the cache key. The query string is never logged: it holds
the signature and whatever the page put in the card (names, titles).

ogproxy's other messages go through the same format (logs.py); in text, whatever a
request put in a message has its control characters escaped, so it cannot forge a line.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs

log = logging.getLogger("ogproxy.access")
MAX_USER_AGENT = 256  # characters kept of a User-Agent: enough to tell crawlers apart
# Request ids: a random per-process prefix and a counter (unique across workers and
# restarts in practice, and cheaper than a random id per request).
_ID_PREFIX = os.urandom(4).hex()
_ids = itertools.count(1)


# Told of every request once it is answered: the metrics' request counter.
Observer = Callable[[Scope, int, "str | None"], None]


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, observe: Observer | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = f"{_ID_PREFIX}-{next(_ids):x}"
        seen: dict[str, Any] = {"status": 0, "cache": None, "bytes": 0, "id": request_id}
        state = scope.setdefault("state", {})
        header = (b"x-request-id", request_id.encode())

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", ()))
                for name, value in headers:
                    if name == b"x-cache":
                        seen["cache"] = value.decode()
                message["headers"] = [*headers, header]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        token = logs.REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, capture)
        finally:
            logs.REQUEST_ID.reset(token)
            status = seen["status"] or 500  # nothing was sent: the app failed
            if self.observe is not None:
                self.observe(scope, status, seen["cache"])
            _record(scope, state, seen, status, started)


class _Sink:
    """Where access lines go: straight to stderr in batches once configure() ran (the
    server), else through the ``ogproxy.access`` logger (tests, embedding apps).

    One log call per request cost ~10 us and, flushed each time, halved the hit rate
    under wrk (10k vs 18k req/s); lines written in batches of 512, or every second by
    the app, skip the logging machinery and the per-line flush. The line itself is built
    with f-strings from escaped fields (~9 us; json.dumps of the fields took ~20 us).
    """

    def __init__(self) -> None:
        self.stream: TextIO | None = None
        self.enabled = True
        self.format: logs.LogFormat = "json"
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        if self.stream is None:
            log.info(line)
            return
        self._lines.append(line)
        if len(self._lines) >= 512:
            self.flush()

    def flush(self) -> None:
        if self._lines and self.stream is not None:
            self.stream.write("\n".join(self._lines) + "\n")
            self.stream.flush()
            self._lines.clear()


SINK = _Sink()


def _record(
    scope: Scope, state: dict[str, Any], seen: dict[str, Any], status: int, started: float
) -> None:
    if not SINK.enabled or (SINK.stream is None and not log.isEnabledFor(logging.INFO)):
        return
    if state.get("unlogged"):  # the dev playground's poll (playground.py)
        return
    client = scope.get("client")
    line = AccessLine(
        method=scope["method"],
        path=scope["path"],
        status=status,
        cache=seen["cache"],
        bytes=seen["bytes"],
        ms=round((time.perf_counter() - started) * 1000, 1),
        client=client[0] if client else None,
        user_agent=_user_agent(scope),
        request_id=seen["id"],
        render_ms=state.get("render_ms"),
        key=state.get("key"),
    )
    if SINK.stream is None:
        log.info(logs.json_line(line.fields()))
    elif SINK.format == "json":
        SINK.add(line.json())
    else:
        SINK.add(line.text())


@dataclass(slots=True)
class AccessLine:
    """One request's line. Its text comes from the request (the path is percent-decoded,
    the User-Agent is anything), so every string is escaped: it stays one line. In text,
    the path and the User-Agent are quoted too, so that neither can pose as other fields.

    Built with f-strings: a ``json.dumps`` of the fields cost ~20 us a request and a
    quarter of the hit rate (bench/README, 2026-11-25).
    """

    method: str
    path: str
    status: int
    cache: str | None
    bytes: int
    ms: float
    client: str | None
    user_agent: str | None
    request_id: str
    render_ms: float | None = None
    key: str | None = None

    def fields(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None or k not in ("render_ms", "key")}

    def json(self) -> str:
        s = logs.json_string
        extra = ""
        if self.render_ms is not None:
            extra += f',"render_ms":{self.render_ms}'
        if self.key is not None:
            extra += f',"key":{s(self.key)}'
        return (
            f'{{"time":"{logs.timestamp()}","level":"INFO","logger":"{log.name}",'
            f'"method":{s(self.method)},"path":{s(self.path)},"status":{self.status},'
            f'"cache":{s(self.cache)},"bytes":{self.bytes},"ms":{self.ms},'
            f'"client":{s(self.client)},"user_agent":{s(self.user_agent)},'
            f'"request_id":{s(self.request_id)}{extra}}}'
        )

    def text(self) -> str:
        e = logs.escape
        extra = f" render_ms={self.render_ms}" if self.render_ms is not None else ""
        extra += f" key={e(self.key)}" if self.key is not None else ""
        return (
            # The path in quotes (JSON-escaped): a path may hold spaces and look like
            # the fields after it ("/x 200 HIT ... client=...").
            f"{logs.timestamp()} INFO {log.name}: {e(self.method)} {logs.json_string(self.path)} "
            f"{self.status} {self.cache or '-'} {self.bytes}B {self.ms}ms "
            f"client={e(str(self.client))} request_id={self.request_id}{extra} "
            f"user_agent={json.dumps(self.user_agent)}"  # ASCII: C1 controls escaped too
        )


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return str(value.decode("latin-1")[:MAX_USER_AGENT])
    return None


def configure(level: str, access_log: bool, fmt: logs.LogFormat = "json") -> None:
    """Every logger in ``fmt`` on stderr; access lines written there in batches."""
    logs.configure(level, fmt)
    SINK.stream = sys.stderr
    SINK.enabled = access_log
    SINK.format = fmt


def flush_access_log() -> None:
    SINK.flush()
