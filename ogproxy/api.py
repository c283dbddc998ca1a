"""The hosted-API shape: ``POST /v1/og-image`` with a JSON body and an ``x-api-key``.

Code written for a hosted OG image API only needs a new base URL and key: the body is
``{title, subtitle, template, accentColor, ...}`` or ``{html}``, the answer the image.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request

from .errors import BodyTooLarge, InvalidParam, NotFound, Unauthorized
from .params import MAX_HTML

MAX_BODY = MAX_HTML + 64 * 1024
_TOO_LARGE = f"Request body larger than {MAX_BODY} bytes."


def check_api_key(given: str | None, keys: tuple[str, ...]) -> None:
    if not keys:
        raise NotFound(detail="POST API called but OGPROXY_API_KEYS is not set")
    offered = (given or "").encode()
    # Compare against every key, always: no early exit that would time which one matched.
    matches = [hmac.compare_digest(offered, key.encode()) for key in keys]
    if not given or not any(matches):
        raise Unauthorized(detail="bad or missing x-api-key")


async def json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge(_TOO_LARGE)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BodyTooLarge(_TOO_LARGE)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParam("body", "is not valid JSON") from None
    except RecursionError:  # no card field nests at all; a bounded body can still nest deep
        raise InvalidParam("body", "is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidParam("body", "must be a JSON object")
    return body
