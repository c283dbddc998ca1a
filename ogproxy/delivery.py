"""The image answer, shared by the full request path and the repeat-hit fast path.

It adds what CDNs and crawlers use: a strong ETag from the content address (so
``If-None-Match`` gets 304), immutable ``Cache-Control`` plus ``CDN-Cache-Control`` for
edges that honour it (``no-cache`` under --dev, where templates reload), ``Accept-Ranges``
with single ``Range`` requests (206/416, with ``If-Range``), and no ``Vary``: the format
is in the path, never negotiated.

A degraded card (rendered without an asset that failed, cards.py) gets none of that:
a short max-age and no validator, so nothing keeps it past a minute.
"""

from __future__ import annotations

import re

from starlette.responses import Response

Headers = list[tuple[bytes, bytes]]
# Safe because the URL names the content: any change to it is a new URL.
IMMUTABLE = "public, max-age=31536000, immutable"
_IMMUTABLE = IMMUTABLE.encode()
# A degraded card: asked for again after this long, by a CDN and by the next request
# here (it is never stored), so a recovered asset shows within a minute.
DEGRADED_MAX_AGE = 60
_DEGRADED = f"public, max-age={DEGRADED_MAX_AGE}".encode()
# Under --dev a saved template changes the card a URL names (reload.py): browsers ask again
# each time, and the ETag (the content address) makes an unchanged card a 304.
_REVALIDATE = b"no-cache"
_RANGE = re.compile(rb"^bytes=(\d*)-(\d*)$")


def etag(key: str) -> str:
    """A strong ETag derived from the content address (cachekey.py)."""
    return f'"{key[:40]}"'


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return bytes(value)
    return None


def _etag_matches(header: bytes, tag: bytes, stored: bool) -> bool:
    """``tag`` is named, or ``*`` is and the image exists (RFC 9110: ``*`` matches any
    current representation, and a card never rendered, or one that fails, has none)."""
    candidates = {t.strip().removeprefix(b"W/") for t in header.split(b",")}
    return tag in candidates or (stored and b"*" in candidates)


UNSATISFIABLE = (-1, -1)


def _position(digits: bytes, size: int) -> int:
    """A byte position, where anything past the image is just "past the image".

    The digits come from the client: ``int()`` of thousands of them raises (Python caps
    it at 4300) and costs time, and no image here has more than a dozen.
    """
    digits = digits.lstrip(b"0")
    return size + 1 if len(digits) > len(str(size)) else int(digits or b"0")


def _byte_range(header: bytes, size: int) -> tuple[int, int] | None:
    """(first, last) of a single range, UNSATISFIABLE, or None to ignore the header."""
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or garbage: answer the whole image, as RFC 9110 allows
    if not m.group(1):  # the last N bytes
        n = _position(m.group(2), size)
        return (max(0, size - n), size - 1) if n else UNSATISFIABLE
    first = _position(m.group(1), size)
    last = min(_position(m.group(2), size), size - 1) if m.group(2) else size - 1
    return (first, last) if first <= last and first < size else UNSATISFIABLE


def not_modified(request_headers: Headers, key: str, *, stored: bool) -> bool:
    """The request's If-None-Match names this image: a 304 without reading the image.

    ``stored``: the image exists (so ``*`` matches it too)."""
    return (seen := _header(request_headers, b"if-none-match")) is not None and _etag_matches(
        seen, etag(key).encode(), stored
    )


def wants_any(request_headers: Headers) -> bool:
    """If-None-Match holds ``*``: only whether the image exists can answer it."""
    seen = _header(request_headers, b"if-none-match")
    return seen is not None and b"*" in {t.strip() for t in seen.split(b",")}


def image_answer(
    request_headers: Headers,
    method: str,
    key: str,
    media_type: bytes,
    body: bytes,
    cache: bytes,
    *,
    stored: bool = True,
    immutable: bool = True,
) -> tuple[int, Headers, bytes]:
    """(status, headers, body) for an image request; ``stored``: the image existed when
    the request came (False for one rendered for it: ``If-None-Match: *`` did not match);
    ``immutable``: False under --dev, where the card of a URL changes with its template."""
    tag = etag(key).encode()
    cache_control = _IMMUTABLE if immutable else _REVALIDATE
    common = [
        (b"etag", tag),
        (b"cache-control", cache_control),
        (b"cdn-cache-control", cache_control),
        (b"accept-ranges", b"bytes"),
    ]
    if not_modified(request_headers, key, stored=stored):
        return 304, common, b""
    status, part = 200, body
    headers = [(b"content-type", media_type), *common, (b"x-cache", cache)]
    wanted = _header(request_headers, b"range")
    if_range = _header(request_headers, b"if-range")
    if wanted is not None and (if_range is None or if_range.strip() == tag):
        span = _byte_range(wanted, len(body))
        if span == UNSATISFIABLE:
            no_store = [
                (b"cache-control", b"no-store"),
                (b"content-range", f"bytes */{len(body)}".encode()),
            ]
            return 416, no_store, b""
        if span:
            first, last = span
            status, part = 206, body[first : last + 1]
            headers.append((b"content-range", f"bytes {first}-{last}/{len(body)}".encode()))
    headers.append((b"content-length", str(len(part)).encode()))
    return status, headers, b"" if method == "HEAD" else part


def degraded_answer(method: str, media_type: bytes, body: bytes) -> tuple[int, Headers, bytes]:
    """(status, headers, body) for a degraded card: 200, ``X-Cache: DEGRADED``, kept a
    minute at most. No ETag: the real card's would let a 304 keep this one alive at a
    CDN, and one of its own would be a validator for bytes that are never stored. No
    ranges either: the next render's bytes may differ, so a Range is answered in full."""
    headers = [
        (b"content-type", media_type),
        (b"cache-control", _DEGRADED),
        (b"x-cache", b"DEGRADED"),
        (b"content-length", str(len(body)).encode()),
    ]
    return 200, headers, b"" if method == "HEAD" else body


class RawResponse(Response):
    """A Starlette response with exactly the given status, headers and body."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = headers
