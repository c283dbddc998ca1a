"""Request size limits, checked before anything else looks at a request."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body

MAX_TARGET_BYTES = 8192  # path + query; the image query itself is capped at 4 KiB (414)
MAX_HEADER_BYTES = 16384  # all header names and values together
MAX_HEADERS = 64
URL_TOO_LONG = "URL too long."
HEADERS_TOO_LARGE = "Request headers too large."
_URL_TOO_LONG = error_body(414, URL_TOO_LONG)
_HEADERS_TOO_LARGE = error_body(431, HEADERS_TOO_LARGE)


async def _refuse(send: Send, status: int, message: bytes) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(message)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": message})


class LimitsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = len(scope.get("raw_path") or scope["path"].encode()) + len(
                scope["query_string"]
            )
            if target > MAX_TARGET_BYTES:
                await _refuse(send, 414, _URL_TOO_LONG)
                return
            headers = scope["headers"]
            if (
                len(headers) > MAX_HEADERS
                or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES
            ):
                await _refuse(send, 431, _HEADERS_TOO_LARGE)
                return
        await self.app(scope, receive, send)
