"""Rendering cards to PNG in long-lived headless Chromium processes.

Browsers are launched once (in the app's lifespan), each with a few pages ("tabs") that
are reused. A tab keeps the last template shell it loaded; a card from the same shell
only has its text changed in place, which skips parsing and styling a new document.
Capture uses Chromium's fast PNG mode and the pixels are re-encoded outside the browser
(see encoder.py). Contexts are offline and abort every request: a render never fetches
anything.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from . import browser as _browser
from .encoder import reencode_png
from .errors import RenderFailed, RenderTimeout
from .params import Output
from .templates import Document

log = logging.getLogger("ogproxy.renderer")

# A page that has rendered this many cards is replaced by a fresh one: documents loaded
# with set_content leave a little behind each time, and a new page frees all of it.
RECYCLE_AFTER = 500

# Finds the marker text nodes of a freshly loaded shell once, then sets their text and
# re-runs the template's fitting script. Text node data is never parsed as HTML.
# set_content() keeps the window object, so slots found in an earlier shell are stale
# once they are no longer connected.
_UPDATE_JS = """async (slots) => {
  const known = window.__ogSlots;
  if (!known || !Object.values(known).every((n) => n.isConnected)) {
    const found = {};
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.data in slots) found[n.data] = n;
    }
    window.__ogSlots = found;
  }
  for (const [marker, text] of Object.entries(slots)) {
    const node = window.__ogSlots[marker];
    if (!node) return false;
    node.data = text;
  }
  if (window.__ogFit) await window.__ogFit();
  return true;
}"""


async def _abort(route: Route) -> None:
    await route.abort("blockedbyclient")


@dataclass(eq=False)
class Tab:
    page: Page
    cdp: CDPSession
    shell: int | None = None  # hash of the loaded shell, None if a one-off page
    size: tuple[int, int] = (0, 0)
    renders: int = field(default=0)

    async def load(self, doc: Document, output: Output) -> None:
        if self.size != (output.width, output.height):
            await self.page.set_viewport_size({"width": output.width, "height": output.height})
            self.size = (output.width, output.height)
        if doc.shell is not None:
            key = hash(doc.shell)
            if self.shell != key:
                self.shell = None
                await self.page.set_content(doc.shell, wait_until="load")
                self.shell = key
            if await self.page.evaluate(_UPDATE_JS, doc.slots):
                return
        self.shell = None
        await self.page.set_content(doc.html, wait_until="load")
        # Templates expose a promise that settles once fonts are ready and text is fitted.
        await self.page.evaluate("window.__ogReady || null")

    async def capture(self) -> bytes:
        shot = await self.cdp.send(
            "Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}
        )
        return base64.b64decode(shot["data"])


class Renderer:
    def __init__(
        self, *, pages: int, chromium: str | None, timeout: float, browsers: int = 1
    ) -> None:
        self._pages = pages
        self._browsers_wanted = max(1, min(browsers, pages))
        self._chromium = chromium
        self._timeout = timeout
        self._pw: Playwright | None = None
        self._contexts: list[BrowserContext] = []
        self._browsers: list[Browser] = []
        self._pool: asyncio.Queue[Tab] = asyncio.Queue()
        self.renders = 0

    @property
    def version(self) -> str:
        return self._browsers[0].version if self._browsers else "not started"

    async def start(self) -> None:
        self._pw = await async_playwright().start()
        try:
            for _ in range(self._browsers_wanted):
                browser = await _browser.launch(self._pw, self._chromium)
                context = await browser.new_context(
                    viewport={"width": Output.width, "height": Output.height},
                    device_scale_factor=1,
                    offline=True,
                    service_workers="block",
                )
                await context.route("**/*", _abort)
                self._browsers.append(browser)
                self._contexts.append(context)
            for i in range(self._pages):
                self._pool.put_nowait(await self._new_tab(self._contexts[i % len(self._contexts)]))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for browser in self._browsers:
            await browser.close()
        self._browsers.clear()
        self._contexts.clear()
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None

    async def _new_tab(self, context: BrowserContext) -> Tab:
        page = await context.new_page()
        return Tab(page, await context.new_cdp_session(page))

    async def _replace(self, tab: Tab) -> None:
        """Throw a tab away (it may be stuck or broken) and put a fresh one in the pool."""
        context = tab.page.context
        with contextlib.suppress(PlaywrightError):
            await tab.page.close()
        self._pool.put_nowait(await self._new_tab(context))

    async def render(self, doc: Document, output: Output) -> bytes:
        """Render a card to PNG bytes of ``output``'s size."""
        tab = await self._pool.get()
        try:
            with anyio.fail_after(self._timeout):
                await tab.load(doc, output)
                raw = await tab.capture()
        except TimeoutError:
            await self._replace(tab)
            raise RenderTimeout(detail=f"render exceeded {self._timeout:.1f} s") from None
        except PlaywrightError as exc:
            await self._replace(tab)
            raise RenderFailed(detail=f"render failed: {exc}") from exc
        tab.renders += 1
        if tab.renders >= RECYCLE_AFTER:
            await self._replace(tab)
        else:
            self._pool.put_nowait(tab)
        # The tab is already free for the next card while this one is encoded.
        png = await anyio.to_thread.run_sync(lambda: reencode_png(raw, palette=output.palette))
        self.renders += 1
        return png
