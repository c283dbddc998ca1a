"""`ogproxy warm`: fetch a site's pages, find their og:image URLs, and request each one.

Run it before a launch so that every card is rendered (and, through a CDN, cached at the
edge) before the first share. Sources: a sitemap (URL or file; sitemap indexes are
followed one level), or a text file with one page URL per line. A card served degraded
(without an asset that failed) is reported as a failure: nobody keeps it past a minute.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

_LOC = re.compile(r"<loc>\s*([^<\s]+)\s*</loc>", re.IGNORECASE)
IMAGE_PROPERTIES = {"og:image", "og:image:url", "og:image:secure_url", "twitter:image"}


class _MetaImages(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        a = dict(attrs)
        if (a.get("property") or a.get("name") or "").lower() in IMAGE_PROPERTIES and a.get(
            "content"
        ):
            self.found.append(str(a["content"]))


def og_images(html: str, page_url: str) -> list[str]:
    parser = _MetaImages()
    parser.feed(html)
    return list(dict.fromkeys(_absolute(page_url, url) for url in parser.found))


def _absolute(page_url: str, url: str) -> str:
    try:
        return urljoin(page_url, url)
    except ValueError:  # a broken URL (``http://[::1``): kept, and reported when requested
        return url


UNREQUESTABLE = "not a URL that can be requested"
DEGRADED = "rendered without an asset that failed (see the server's log)"


def requestable(url: str) -> bool:
    """Whether an HTTP client can request ``url``: http(s), a host, a port that is a port,
    and nothing httpx refuses (it raises InvalidURL, which is not an HTTPError)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is the check
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass
class WarmReport:
    pages: int = 0
    images: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "200 HIT", "200 MISS", "403"...
    failures: list[tuple[str, str]] = field(default_factory=list)


class SourceError(Exception):
    """The sitemap or page list cannot be read: a one-line reason for the operator."""


async def _text(client: httpx.AsyncClient, source: str, *, local: bool = True) -> str:
    if source.startswith(("http://", "https://")):
        if not requestable(source):
            raise SourceError(f"{source}: {UNREQUESTABLE}")
        try:
            response = await client.get(source)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a bad redirect
            raise SourceError(f"{source}: cannot fetch it ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise SourceError(f"{source}: HTTP {response.status_code}")
        return response.text
    if not local:  # a sitemap index names sitemaps on the web, never files here
        raise SourceError(f"{source}: a sitemap index may only list http(s) URLs")
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{source}: not UTF-8 text") from None


async def page_urls(client: httpx.AsyncClient, source: str) -> list[str]:
    """The page URLs a sitemap, sitemap index or list names; SourceError if unreadable."""
    text = await _text(client, source)
    if "<urlset" in text or "<sitemapindex" in text:
        locs = _LOC.findall(text)
        if "<sitemapindex" in text:
            nested = await asyncio.gather(*(_text(client, loc, local=False) for loc in locs))
            locs = [loc for xml in nested for loc in _LOC.findall(xml)]
        return list(dict.fromkeys(locs))
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


async def warm(
    source: str,
    concurrency: int = 8,
    timeout: float = 30.0,
    on_total: Callable[[int], None] = lambda n: None,
    on_progress: Callable[[], None] = lambda: None,
) -> WarmReport:
    report = WarmReport()
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        pages = await page_urls(client, source)
        report.pages = len(pages)
        on_total(len(pages))

        # One bad page or image is reported and skipped: it never ends the run.
        async def images_of(page: str) -> list[str]:
            async with limit:
                try:
                    if not requestable(page):
                        report.failures.append((page, f"page: {UNREQUESTABLE}"))
                        return []
                    response = await client.get(page)
                    response.raise_for_status()
                    return og_images(response.text, str(response.url))
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    report.failures.append((page, f"page: {type(exc).__name__}"))
                    return []
                finally:
                    on_progress()

        found = await asyncio.gather(*(images_of(page) for page in pages))
        images = list(dict.fromkeys(url for urls in found for url in urls))
        report.images = len(images)
        on_total(len(pages) + len(images))

        async def request(url: str) -> None:
            async with limit:
                try:
                    if not requestable(url):
                        report.failures.append((url, UNREQUESTABLE))
                        return
                    response = await client.get(url)
                    label = str(response.status_code)
                    if cache := response.headers.get("x-cache"):
                        label += f" {cache}"
                    report.statuses[label] += 1
                    if response.status_code != 200:
                        report.failures.append((url, f"HTTP {response.status_code}"))
                    elif cache == "DEGRADED":  # a card for a minute, not a warm one
                        report.failures.append((url, DEGRADED))
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    report.failures.append((url, type(exc).__name__))
                finally:
                    on_progress()

        await asyncio.gather(*(request(url) for url in images))
    return report
