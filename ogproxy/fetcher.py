"""The one way a card reaches the network: images, stylesheets and fonts, fetched by the server.

The browser has no network of its own. Every request a card's page makes is handed to
``CardRequests.handle`` (Playwright request interception), and template image parameters
go through ``Fetcher.inline``; both end in ``Fetcher.get``, which fetches with httpx:

- only from origins the operator allowed (origins.py), only GET, only images,
  stylesheets and fonts, and only a body whose type is what the element asked for;
- only from public addresses, connecting to the very address that was checked (the
  URL is rewritten to it; Host and TLS SNI keep the name), so a name cannot be
  re-pointed between the check and the connection;
- redirects followed only within the origin; bytes capped per asset (streamed, and
  decompressed in bounded steps: a gzip bomb costs at most the cap) and per card;
  one overall deadline per asset and per card;
- through an on-disk cache (assetcache.py) that honours ``Cache-Control`` up to a cap
  and stands in with a stale copy when the origin is down.

A refusal or failure is recorded on the card; for a strict card ``CardRequests.check``
turns the first one into the error of the render (422 for a URL the settings refuse,
502/504 for an allowed asset that failed); any other card renders without it and is
served degraded (cards.py, ``OGPROXY_ASSET_FAILURE``). Anything
else that goes wrong fetching an asset (a redirect the client cannot follow, a bug) is
that asset's 502: a page's request is always settled at once, never left to the render
timeout. A card's failures are logged as one line with counts, whatever their number.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import httpx
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Request, Route

from .assetcache import Asset, AssetCache
from .config import DEFAULT_ASSET_TIMEOUT
from .errors import (
    AssetError,
    AssetFailed,
    AssetRefused,
    AssetTimeout,
    InvalidDocument,
    InvalidParam,
)
from .logs import Sampler
from .origins import SETTING, AllowList, Origin, is_public, parse_origin
from .rendering import FLOODED, MAX_PAGE_REQUESTS
from .singleflight import SingleFlight

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("ogproxy.fetcher")

Resolver = Callable[[str, int], Awaitable[list[str]]]

ASSET_BYTES = 5 * 2**20  # one image, stylesheet or font
CARD_BYTES = 20 * 2**20  # everything one card loads
CARD_TIMEOUT = 8.0  # seconds for all of a card's assets; below the render timeout
MAX_REDIRECTS = 3  # within the origin
DEFAULT_FRESH = 3600.0  # seconds an asset without max-age is reused before refetching
MAX_FRESH = 86400.0  # the cap on an origin's max-age
# Failures a card keeps (the first is the render's error; the log line shows them); the
# rest are only counted. A page asking for 20,000 refused images kept 20,000 errors and
# wrote 6,599 warning lines.
MAX_KEPT = 5
# Font services pick the font format by browser: this one gets WOFF2 from Google Fonts.
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)

KINDS = ("image", "stylesheet", "font")
_A = {"image": "an image", "stylesheet": "a stylesheet", "font": "a font"}
_FONT_TYPES = {
    "application/font-woff",
    "application/font-woff2",
    "application/x-font-woff",
    "application/x-font-ttf",
    "application/x-font-otf",
    "application/font-sfnt",
    "application/vnd.ms-fontobject",
}
# Storage buckets often serve uploads as octet-stream: accepted when the bytes say what it is.
_MAGIC = {
    "image": (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"\x00\x00\x00"),
    "font": (b"wOF2", b"wOFF", b"\x00\x01\x00\x00", b"OTTO", b"true"),
}


def _accepts(kind: str, asset: Asset) -> bool:
    media = asset.media_type
    if media in ("application/octet-stream", "binary/octet-stream"):
        return asset.body.startswith(_MAGIC.get(kind, ()))
    if kind == "image":
        return media.startswith("image/")
    if kind == "stylesheet":
        return media == "text/css"
    return kind == "font" and (media.startswith("font/") or media in _FONT_TYPES)


def _short(url: str) -> str:
    return url if len(url) <= 200 else url[:197] + "..."


def _not_an_asset(url: str, kind: str) -> AssetRefused:
    return AssetRefused(
        f"{_short(url)}: a card loads images, stylesheets and fonts only "
        f"(this was a {kind} request)"
    )


# A CSP directive that refused a request -> the kind of request it was, as Chromium names it.
_DIRECTIVE_KINDS = {
    "img-src": "image",
    "style-src": "stylesheet",
    "style-src-elem": "stylesheet",
    "font-src": "font",
    "connect-src": "fetch",
    "script-src": "script",
    "script-src-elem": "script",
    "frame-src": "document",
    "child-src": "document",
    "media-src": "media",
    "object-src": "object",
    "worker-src": "worker",
    "manifest-src": "manifest",
}


def outcome(exc: AssetError) -> str:
    """How a failed asset is counted (the ``outcome`` label of the assets metric)."""
    return {422: "refused", 504: "timeout"}.get(exc.status_code, "failed")


# A traceback a second at most: an unexpected error may repeat for every asset of a page.
_SURPRISES = Sampler(1.0)


def _unexpected(url: str, exc: Exception) -> AssetFailed:
    """An exception nothing expected, as the asset's 502 (and, sampled, a traceback)."""
    if _SURPRISES.take() is not None:
        log.error("unexpected error fetching %s", _short(url), exc_info=exc)
    return AssetFailed(
        f"{_short(url)} could not be fetched",
        detail=f"{_short(url)} could not be fetched ({type(exc).__name__}: {str(exc)[:200]})",
    )


class _OriginDown(AssetFailed):
    """The origin did not answer usefully (network error, 5xx): a stale copy may stand in."""


async def _resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _fresh_for(cache_control: str) -> float | None:
    """Seconds the origin lets us reuse an asset; None for ``no-store``."""
    directives = {}
    for part in cache_control.lower().split(","):
        name, _, value = part.partition("=")
        directives[name.strip()] = value.strip().strip('"')
    if "no-store" in directives:
        return None
    if "no-cache" in directives:
        return 0.0
    for name in ("s-maxage", "max-age"):
        value = directives.get(name, "")
        if value.isdigit():
            return min(float(value[:12]), MAX_FRESH)
    return DEFAULT_FRESH


async def _read_capped(response: httpx.Response, cap: int, url: str) -> bytes:
    """The body, decoded, or AssetFailed as soon as it passes ``cap`` bytes."""
    too_big = AssetFailed(f"{_short(url)} is larger than {cap / 2**20:g} MiB")
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and (len(declared) > 12 or int(declared) > cap):
        raise too_big
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise AssetFailed(f"{_short(url)} is sent with an unsupported encoding ({encoding[:20]})")
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
    body = bytearray()
    async for chunk in response.aiter_raw():
        if decoder is not None:
            try:  # never more than one byte past the cap, whatever the ratio
                chunk = decoder.decompress(chunk, cap + 1 - len(body))
            except zlib.error:
                raise AssetFailed(f"{_short(url)} is not validly {encoding}-encoded") from None
        body += chunk
        if len(body) > cap:
            raise too_big
    return bytes(body)


@functools.cache
def _tls() -> ssl.SSLContext:
    """The system's CA bundle, loaded once a process (about 30 ms each time otherwise)."""
    return ssl.create_default_context()


class Fetcher:
    """One per server: the httpx client, the asset cache and the allow-list."""

    def __init__(
        self,
        allowed: AllowList,
        cache: AssetCache,
        *,
        asset_bytes: int = ASSET_BYTES,
        card_bytes: int = CARD_BYTES,
        asset_timeout: float = DEFAULT_ASSET_TIMEOUT,
        card_timeout: float = CARD_TIMEOUT,
        resolve: Resolver = _resolve,
    ) -> None:
        self.allowed, self.cache = allowed, cache
        self.asset_bytes, self.card_bytes = asset_bytes, card_bytes
        self.asset_timeout, self.card_timeout = asset_timeout, card_timeout
        self._resolve = resolve
        # trust_env=False: a proxy from the environment would connect where we did not check.
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=asset_timeout, verify=_tls()
        )
        self._flights: SingleFlight[Asset] = SingleFlight()
        self.counts: collections.Counter[str] = collections.Counter()  # outcome -> assets

    @classmethod
    def for_settings(cls, settings: Settings) -> Fetcher:
        return cls(
            AllowList(settings.asset_origins),
            AssetCache(settings.cache_dir / "assets"),
            asset_timeout=settings.asset_timeout,
            # Leaves the render time to report which asset was late, rather than a bare 504.
            card_timeout=min(CARD_TIMEOUT, settings.render_timeout * 0.8),
        )

    def card(self, *, strict: bool = True) -> CardRequests:
        """A fresh budget (bytes, deadline) and failure record for one render; ``strict``:
        its first failure is the render's error, else the card renders without it."""
        return CardRequests(self, strict=strict)

    async def inline(self, name: str, url: str) -> str:
        """Template image parameter ``name`` as a data: URI; its errors name ``name``."""
        if not url or url.startswith("data:image/"):
            return url
        self.allowed.check_image(name, url)
        try:
            asset = await self.get(url, "image")
        except AssetRefused as exc:
            raise InvalidParam(name, exc.public_message) from None
        except AssetError as exc:
            exc.param = name
            raise
        encoded = base64.b64encode(asset.body).decode("ascii")
        return f"data:{asset.media_type};base64,{encoded}"

    async def get(self, url: str, kind: str, deadline: float | None = None) -> Asset:
        """The asset at ``url`` if allowed and of ``kind``, else AssetError naming the URL.

        ``deadline`` (``time.monotonic()``) is the card's; without one, the asset's own
        limit (``asset_timeout``) is the only one."""
        try:
            return await self._get(url, kind, deadline)
        except AssetError as exc:
            self.failed(exc)
            raise
        except Exception as exc:  # whatever it is, it is this asset's failure, not a 500
            failed = _unexpected(url, exc)
            self.failed(failed)
            raise failed from exc

    def failed(self, exc: AssetError, times: int = 1) -> None:
        """Count a refused or failed asset (the one place it happens). It is logged by
        whoever reports it: the card's summary line, or the request whose error it is."""
        self.counts[outcome(exc)] += times

    def refusal(self, url: str) -> AssetRefused | None:
        """Why ``url`` is not fetched at all (its origin), or None."""
        try:
            origin = parse_origin(url)
        except ValueError as exc:
            return AssetRefused(f"{_short(url)} {exc}")
        if not self.allowed.allows(origin):
            return AssetRefused(
                f"{_short(url)} is not from an allowed origin: add {origin} to {SETTING} to load it"
            )
        return None

    async def _get(self, url: str, kind: str, deadline: float | None) -> Asset:
        refused = self.refusal(url)
        if refused is not None:
            raise refused
        origin = parse_origin(url)
        cached = await self.cache.get(url)
        if cached is not None and cached.fresh and _accepts(kind, cached.asset):
            self.counts["cached"] += 1
            return cached.asset
        try:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            with anyio.fail_after(wait):
                asset, _ = await self._flights.run(
                    f"{kind} {url}", lambda: self._download(url, origin, kind)
                )
        except (_OriginDown, AssetTimeout, TimeoutError) as exc:
            if cached is not None and _accepts(kind, cached.asset):
                log.warning("asset %s: origin failing, serving a stale copy (%s)", url, exc)
                self.counts["stale"] += 1
                return cached.asset
            if isinstance(exc, TimeoutError):  # the card's deadline, not the asset's own limit
                raise AssetTimeout(
                    f"{_short(url)} did not arrive within the card's {self.card_timeout:g} s"
                ) from None
            raise
        self.counts["fetched"] += 1
        return asset

    async def _download(self, url: str, origin: Origin, kind: str) -> Asset:
        try:
            with anyio.fail_after(self.asset_timeout):
                return await self._follow(url, origin, kind)
        except TimeoutError:
            raise AssetTimeout(
                f"{_short(url)} did not arrive within {self.asset_timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise _OriginDown(
                f"{_short(url)} could not be fetched ({type(exc).__name__})"
            ) from None
        except httpx.InvalidURL as exc:  # not an HTTPError: a Location it cannot follow
            raise AssetFailed(
                f"{_short(url)} redirects to a URL the client cannot follow ({str(exc)[:80]})"
            ) from None

    async def _follow(self, url: str, origin: Origin, kind: str) -> Asset:
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            address = await self._address(url, origin)
            async with self._stream(target, origin, address) as response:
                location = response.headers.get("location")
                if response.status_code in (301, 302, 303, 307, 308) and location:
                    target = str(httpx.URL(target).join(location))
                    if _same_origin(target, origin):
                        continue
                    raise AssetFailed(f"{_short(url)} redirects to another origin")
                if response.status_code >= 500:
                    raise _OriginDown(f"{_short(url)} answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise AssetFailed(f"{_short(url)} answered HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "")[:200]
                body = await _read_capped(response, self.asset_bytes, url)
                fresh_for = _fresh_for(response.headers.get("cache-control", ""))
            asset = Asset(url, content_type.split(";")[0].strip().lower(), body)
            if not _accepts(kind, asset):
                what = asset.media_type or "untyped"
                raise AssetFailed(f"{_short(url)} is {what[:60]}, not {_A[kind]}")
            if fresh_for is not None:
                await self.cache.put(asset, fresh_for)
            return asset
        raise AssetFailed(f"{_short(url)} redirects more than {MAX_REDIRECTS} times")

    async def _address(self, url: str, origin: Origin) -> str:
        """The address to connect to: public, or an IP literal the operator listed."""
        if self.allowed.listed_as_ip(origin):
            return origin.host
        try:
            found = [ipaddress.ip_address(a) for a in await self._resolve(origin.host, origin.port)]
        except (OSError, ValueError) as exc:
            raise _OriginDown(f"{_short(url)}: {origin.host} does not resolve ({exc})") from None
        private = [a for a in found if not is_public(a)]
        if private or not found:
            raise AssetRefused(
                f"{_short(url)}: {origin.host} resolves to a non-public address; to fetch "
                f"from an internal host, list its IP-literal origin in {SETTING}",
                detail=f"{url}: {origin.host} resolves to {', '.join(map(str, found))}",
            )
        return found[0].compressed

    @contextlib.asynccontextmanager
    async def _stream(
        self, url: str, origin: Origin, address: str
    ) -> AsyncIterator[httpx.Response]:
        parsed = httpx.URL(url)
        headers = {
            "Host": origin.netloc,  # the name that was matched and resolved
            "User-Agent": BROWSER_UA,
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
        }
        extensions = {"sni_hostname": origin.host} if origin.scheme == "https" else {}
        request = self._client.build_request(
            "GET", parsed.copy_with(host=address), headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self._client.aclose()
        self.cache.close()


def _same_origin(url: str, origin: Origin) -> bool:
    try:
        return parse_origin(url) == origin
    except ValueError:
        return False


class CardRequests:
    """The requests of one card's page (a rendering.PageRequests): the card's view of
    the fetcher, its byte and time budget, and what went wrong."""

    def __init__(self, fetcher: Fetcher, *, strict: bool = True) -> None:
        self.fetcher = fetcher
        self.strict = strict
        self._deadline: float | None = None
        self.bytes = 0
        self.requests = 0  # every request of the page, refused or not
        self.flooded = asyncio.Event()
        self.failures: list[AssetError] = []  # the first MAX_KEPT
        self.counts: collections.Counter[str] = collections.Counter()  # outcome -> assets

    @property
    def deadline(self) -> float:
        """When the card's assets must all be in; the clock starts at its first request
        (time spent waiting for a free page is not the assets' fault)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.fetcher.card_timeout
        return self._deadline

    async def handle(self, route: Route) -> None:
        """Fulfil one request of the card's page from the fetcher, or abort it.

        Every request is settled here, whatever fails: one left pending holds the page
        until the render times out."""
        self.requests += 1
        if self.requests > MAX_PAGE_REQUESTS:
            self.flooded.set()  # the renderer ends the render; this one is only refused
            with contextlib.suppress(PlaywrightError):
                await route.abort("blockedbyclient")
            return
        try:
            asset = await self._asset(route.request)
            headers = {
                "content-type": asset.media_type,
                # The page is about:blank; fonts from another origin need CORS to load.
                # Nothing secret is in these bodies: they were fetched without credentials.
                "access-control-allow-origin": "*",
            }
            await route.fulfill(status=200, headers=headers, body=asset.body)
        except Exception as exc:
            self.record(self._failure(route.request.url, exc))
            with contextlib.suppress(PlaywrightError):  # the page may be gone (render timeout)
                await route.abort("blockedbyclient")

    @property
    def policy(self) -> str:
        """The page's Content-Security-Policy: what the fetcher would refuse (any other
        origin, anything but an image, stylesheet or font), the page refuses itself, with
        no request that has to be routed here. What needs no request (``data:``, ``blob:``,
        inline scripts and styles) it allows, as before."""
        origins = self.fetcher.allowed.sources()
        directives = {
            "default-src": "data: blob: 'unsafe-inline' 'unsafe-eval'",
            "img-src": f"data: blob: {origins}",
            "style-src": f"data: blob: 'unsafe-inline' {origins}",
            "font-src": f"data: blob: {origins}",
        }
        # Exactly as the page reports it back (single spaces, none at the end).
        return "; ".join(f"{name} {sources.strip()}" for name, sources in directives.items())

    def blocked(self, count: int, first: list[tuple[str, str]]) -> None:
        """What the page refused itself under ``policy``: ``count`` requests, the first
        few as (URL, CSP directive). Recorded as the same refusals the fetcher makes."""
        for url, directive in first:
            kind = _DIRECTIVE_KINDS.get(directive, "other")
            if kind not in KINDS:
                refused = _not_an_asset(url, kind)
            else:  # from an origin not allowed, as the policy says
                refused = self.fetcher.refusal(url) or AssetRefused(
                    f"{_short(url)}: refused by the card's page policy ({directive})"
                )
            self.fetcher.failed(refused)
            self.record(refused)
        if (more := count - len(first)) > 0:
            refused = AssetRefused("refused by the page's policy")
            self.fetcher.failed(refused, more)
            self.counts[outcome(refused)] += more

    async def _asset(self, request: Request) -> Asset:
        url, kind = request.url, request.resource_type
        if request.method != "GET" or request.is_navigation_request() or kind not in KINDS:
            refused = _not_an_asset(url, kind)
            self.fetcher.failed(refused)
            raise refused
        asset = await self.fetcher.get(url, kind, self.deadline)
        self.bytes += len(asset.body)
        if self.bytes > self.fetcher.card_bytes:
            over = AssetFailed(
                f"{_short(url)}: the card's assets exceed {self.fetcher.card_bytes / 2**20:g} MiB"
            )
            self.fetcher.failed(over)
            raise over
        return asset

    def _failure(self, url: str, exc: Exception) -> AssetError:
        if isinstance(exc, AssetError):
            return exc  # counted where it was raised
        if isinstance(exc, PlaywrightError):  # fulfil refused, or the page is gone
            failed = AssetFailed(
                f"{_short(url)} could not be handed to the page", detail=f"{url}: {exc}"
            )
        else:
            failed = _unexpected(url, exc)
        self.fetcher.failed(failed)
        return failed

    def record(self, exc: AssetError) -> None:
        """Keep a failure of this card (already counted by the fetcher)."""
        self.counts[outcome(exc)] += 1
        if len(self.failures) < MAX_KEPT:
            self.failures.append(exc)

    def check(self) -> None:
        """Raise the first failure as the render's error, if the card is strict; a page
        that made too many requests, strict or not."""
        if self.flooded.is_set():
            raise InvalidDocument(FLOODED)
        if self.failures and self.strict:
            raise self.failures[0]

    def log_summary(self) -> None:
        """One line for all of the card's failed assets: counts, and the first few."""
        if not self.failures:
            return
        counts = ", ".join(f"{n} {name}" for name, n in sorted(self.counts.items()))
        shown = "; ".join(exc.detail for exc in self.failures)
        more = sum(self.counts.values()) - len(self.failures)
        # Escaped: a URL must not be able to forge a second log line.
        what = "card assets" if self.strict else "card assets, rendered without them"
        line = f"{what}: {counts}: {shown}" + (f"; and {more} more" if more else "")
        log.warning("%s", line.encode("unicode_escape").decode())
