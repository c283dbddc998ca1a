"""Rendering HTML to PNG in one long-lived headless Chromium.

The browser is launched once (in the app's lifespan) with a pool of pages, one per
core by default; each render borrows a page, loads the card's HTML into it, waits for
fonts and the text-fitting script, captures the viewport and hands the page back. The
browser context is offline and every request it tries is aborted: rendering never
fetches anything.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from . import browser as _browser
from .errors import RenderFailed

log = logging.getLogger("ogproxy.renderer")


@dataclass(frozen=True)
class Output:
    """What a render produces; part of the cache key."""

    width: int = 1200
    height: int = 630
    format: str = "png"
    scale: int = 1


async def _abort(route: Route) -> None:
    await route.abort("blockedbyclient")


class Renderer:
    def __init__(self, *, pages: int, chromium: str | None, timeout: float) -> None:
        self._size = pages
        self._chromium = chromium
        self._timeout = timeout
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._pool: asyncio.Queue[Page] = asyncio.Queue()
        self.renders = 0

    @property
    def version(self) -> str:
        return self._browser.version if self._browser else "not started"

    async def start(self) -> None:
        self._pw = await async_playwright().start()
        try:
            self._browser = await _browser.launch(self._pw, self._chromium)
        except BaseException:
            await self._pw.stop()
            raise
        self._context = await self._browser.new_context(
            viewport={"width": Output.width, "height": Output.height},
            device_scale_factor=1,
            offline=True,
            service_workers="block",
        )
        await self._context.route("**/*", _abort)
        for _ in range(self._size):
            self._pool.put_nowait(await self._context.new_page())

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None

    async def render(self, html: str, output: Output) -> bytes:
        """Render a full HTML document to PNG bytes of ``output``'s size."""
        page = await self._pool.get()
        try:
            await page.set_viewport_size({"width": output.width, "height": output.height})
            await page.set_content(html, wait_until="load", timeout=self._timeout * 1000)
            # Templates expose a promise that settles once fonts are ready and text is fitted.
            await page.evaluate("window.__ogReady || null")
            png = await page.screenshot(type="png", timeout=self._timeout * 1000)
        except PlaywrightError as exc:
            raise RenderFailed(detail=f"render failed: {exc}") from exc
        finally:
            self._pool.put_nowait(page)
        self.renders += 1
        return png
