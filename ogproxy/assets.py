"""Images a card shows (avatar, logo), inlined as data: URIs before rendering.

The renderer reaches nothing, so an image URL is fetched here, by the server, with httpx,
and only from the origins the operator allowed (``OGPROXY_ASSET_ORIGINS``, e.g.
``https://avatars.example.com``). No redirects are followed; the answer must be an image
of bounded size. ``data:image/...`` URLs are used as they are.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from urllib.parse import urlsplit

import httpx

from .errors import InvalidParam

MAX_IMAGE_BYTES = 2 * 2**20
FETCH_TIMEOUT = 5.0  # seconds, like imgproxy's download timeout
_CACHED = 256


def origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    return f"{parts.scheme}://{parts.hostname}:{port}"


class Assets:
    def __init__(self, allowed_origins: tuple[str, ...], client: httpx.AsyncClient | None = None):
        self.allowed = {origin(o) for o in allowed_origins}
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False)
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def inline(self, name: str, url: str) -> str:
        """``url`` as a data: URI, or InvalidParam naming ``name``."""
        if not url or url.startswith("data:image/"):
            return url
        if not url.startswith(("https://", "http://")):
            raise InvalidParam(name, "must be an https:// URL or a data:image/ URL")
        if origin(url) not in self.allowed:
            raise InvalidParam(name, f"{origin(url)} is not an allowed image origin")
        if (cached := self._cache.get(url)) is not None:
            return cached
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise InvalidParam(name, f"could not be fetched ({type(exc).__name__})") from None
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if response.status_code != 200:
            raise InvalidParam(name, f"could not be fetched (HTTP {response.status_code})")
        if not kind.startswith("image/"):
            raise InvalidParam(name, f"is {kind or 'not typed'}, not an image")
        if len(response.content) > MAX_IMAGE_BYTES:
            raise InvalidParam(name, f"is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        uri = f"data:{kind};base64,{base64.b64encode(response.content).decode('ascii')}"
        self._cache[url] = uri
        if len(self._cache) > _CACHED:
            self._cache.popitem(last=False)
        return uri

    async def close(self) -> None:
        await self._client.aclose()
