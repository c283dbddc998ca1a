"""One structured log line (and the request metrics) per request, without secrets.

The line is JSON: method, path, status, cache result, bytes, duration and, for a render,
the render time and the first 12 hex digits of the cache key. The query string is never
logged: it holds the signature and whatever the page put in the card (names, titles).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ogproxy.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "cache": None, "bytes": 0}
        state = scope.setdefault("state", {})

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-cache":
                        seen["cache"] = value.decode()
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            _record(scope, state, seen, started)


def _record(scope: Scope, state: dict[str, Any], seen: dict[str, Any], started: float) -> None:
    status = seen["status"] or 500  # nothing was sent: the app failed
    metrics = getattr(scope["app"].state, "metrics", None)
    if metrics is not None:
        metrics.request(scope["path"], status, seen["cache"])
    if not log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "cache": seen["cache"],
        "bytes": seen["bytes"],
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    for extra in ("render_ms", "key"):
        if extra in state:
            line[extra] = state[extra]
    log.info(json.dumps(line, separators=(",", ":")))


def configure(level: str, access_log: bool) -> None:
    """Plain text for ogproxy's own messages; bare JSON lines for the access log."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO if access_log else logging.WARNING)
