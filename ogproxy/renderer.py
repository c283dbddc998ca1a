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
from pathlib import Path

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
from .encoder import encode
from .errors import BrowserUnavailable, InvalidDocument, Overloaded, RenderTimeout
from .fonts import fontconfig_env
from .params import Output
from .priority import (
    keep_children_from_raising_priority,
    lower_children,
    lower_library_threads,
    lower_this_thread,
)
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


class Chromium:
    """One browser process with its offline context; relaunched when it has died."""

    def __init__(
        self, playwright: Playwright, executable: str | None, env: dict[str, str] | None = None
    ) -> None:
        self._pw = playwright
        self._executable = executable
        self._env = env
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped at every launch; tabs of an older one are stale
        self.launches = 0

    @property
    def alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def context(self) -> BrowserContext:
        async with self._lock:
            if not self.alive or self._context is None:
                await self._close()
                self._browser = await _browser.launch(self._pw, self._executable, self._env)
                self._context = await self._browser.new_context(
                    viewport={"width": Output.width, "height": Output.height},
                    device_scale_factor=1,
                    offline=True,
                    service_workers="block",
                )
                await self._context.route("**/*", _abort)
                lower_children()
                self.generation += 1
                self.launches += 1
            return self._context

    async def _close(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
        self._browser = self._context = None

    async def close(self) -> None:
        async with self._lock:
            await self._close()


@dataclass(eq=False)
class Tab:
    """A reusable page. It may be empty (no page yet, or its browser died): see ready()."""

    page: Page
    cdp: CDPSession
    shell: int | None = None  # hash of the loaded shell, None if a one-off page
    size: tuple[int, int, int] = (0, 0, 0)  # width, height, scale
    renders: int = field(default=0)
    owner: Chromium | None = None
    generation: int = 0

    @classmethod
    async def open(cls, owner: Chromium) -> Tab:
        context = await owner.context()
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        return cls(page, cdp, owner=owner, generation=owner.generation)

    @property
    def navigated(self) -> bool:
        return not self.page.is_closed() and not self.page.url.startswith("about:")

    @property
    def usable(self) -> bool:
        owner = self.owner
        fresh = owner is None or (owner.alive and owner.generation == self.generation)
        return fresh and not self.page.is_closed()

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):
            await self.page.close()

    async def load(self, doc: Document, output: Output) -> None:
        size = (output.width, output.height, output.scale)
        if self.size != size:
            await self.cdp.send(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": size[0],
                    "height": size[1],
                    "deviceScaleFactor": size[2],
                    "mobile": False,
                },
            )
            self.size = size
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


def _encode(raw: bytes, output: Output) -> bytes:
    lower_this_thread()
    png = encode(raw, output.format, palette=output.palette, quality=output.quality)
    lower_library_threads()
    return png


class Renderer:
    """A bounded pool of tabs over one or more Chromium processes.

    Renders wait for a free tab; past ``queue`` waiting renders the answer is Overloaded
    (503) at once. A browser that died is relaunched by the next render that needs it,
    and a render it broke is retried once on the new one.
    """

    def __init__(
        self,
        *,
        pages: int,
        chromium: str | None,
        timeout: float,
        browsers: int = 1,
        queue: int = 64,
        fonts_dir: Path | None = None,
    ) -> None:
        self._pages = pages
        self._browsers_wanted = max(1, min(browsers, pages))
        self._executable = chromium
        self._timeout = timeout
        self._queue_limit = queue
        self._fonts_dir = fonts_dir
        self._pw: Playwright | None = None
        self._chromiums: list[Chromium] = []
        self._pool: asyncio.Queue[Tab] = asyncio.Queue()
        self._reviving: asyncio.Task[None] | None = None
        self.waiting = 0
        self.renders = 0

    @property
    def restarts(self) -> int:
        """Browser launches beyond the first of each process."""
        return sum(max(0, c.launches - 1) for c in self._chromiums)

    @property
    def ready(self) -> bool:
        return bool(self._chromiums) and any(c.alive for c in self._chromiums)

    async def start(self) -> None:
        keep_children_from_raising_priority()
        self._pw = await async_playwright().start()
        # Playwright's driver is idle now: lowered before it launches Chromium, every
        # Chromium process and thread is born at the render priority (no race with the
        # processes Chromium starts on its own, like the network service).
        lower_children()
        try:
            env = fontconfig_env(self._fonts_dir)
            self._chromiums = [
                Chromium(self._pw, self._executable, env) for _ in range(self._browsers_wanted)
            ]
            for i in range(self._pages):
                self._pool.put_nowait(await Tab.open(self._chromiums[i % len(self._chromiums)]))
        except BaseException:
            await self.stop()
            raise

    def revive(self) -> None:
        """Relaunch dead browsers in the background, without waiting for a render.

        The readiness probe calls this: an instance that a load balancer took out of
        rotation gets no render that would relaunch its browser.
        """
        if any(not c.alive for c in self._chromiums) and (
            self._reviving is None or self._reviving.done()
        ):
            self._reviving = asyncio.create_task(self._revive())

    async def _revive(self) -> None:
        for chromium in list(self._chromiums):
            if not chromium.alive:
                try:
                    await chromium.context()
                except Exception as exc:  # logged; the next probe or render tries again
                    log.warning("cannot relaunch Chromium: %s", exc)

    async def stop(self) -> None:
        if self._reviving is not None:
            self._reviving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reviving
        for chromium in self._chromiums:
            await chromium.close()
        self._chromiums.clear()
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None

    async def _checkout(self) -> Tab:
        if self.waiting >= self._queue_limit:
            raise Overloaded(detail=f"{self.waiting} renders already waiting")
        self.waiting += 1
        try:
            tab = await self._pool.get()
        finally:
            self.waiting -= 1
        if tab.usable:
            return tab
        return await self._fresh(tab)

    async def _fresh(self, tab: Tab) -> Tab:
        """A new tab in ``tab``'s place, relaunching its browser if needed.

        On failure the old slot goes back to the pool, so the pool never shrinks.
        """
        await tab.close()
        assert tab.owner is not None
        try:
            return await Tab.open(tab.owner)
        except PlaywrightError as exc:
            self._pool.put_nowait(tab)  # keep the slot; the next render tries again
            raise BrowserUnavailable(detail=f"cannot relaunch Chromium: {exc}") from exc

    async def render(self, doc: Document, output: Output) -> bytes:
        """Render a card to PNG bytes of ``output``'s size."""
        for attempt in (1, 2):
            tab = await self._checkout()
            try:
                with anyio.fail_after(self._timeout):
                    await tab.load(doc, output)
                    raw = await tab.capture()
            except TimeoutError:
                # A page stuck in a script is thrown away so the next render is clean.
                self._pool.put_nowait(await self._fresh(tab))
                raise RenderTimeout(detail=f"render exceeded {self._timeout:.1f} s") from None
            except PlaywrightError as exc:
                if tab.navigated or "context was destroyed" in str(exc):
                    # The document left itself (meta refresh, location=...): its fault, not
                    # the browser's. The navigation itself went nowhere (requests abort).
                    self._pool.put_nowait(await self._fresh(tab))
                    raise InvalidDocument(
                        "The card's HTML navigated away from itself; it must stay on its page."
                    ) from exc
                crashed = not tab.usable
                log.warning(
                    "render attempt %d failed (browser alive: %s): %s", attempt, not crashed, exc
                )
                self._pool.put_nowait(await self._fresh(tab))
                if attempt == 1:
                    continue
                raise BrowserUnavailable(detail=f"render failed twice: {exc}") from exc
            break
        tab.renders += 1
        # The tab is free for the next card while this one is encoded.
        self._pool.put_nowait(await self._fresh(tab) if tab.renders >= RECYCLE_AFTER else tab)
        png = await anyio.to_thread.run_sync(_encode, raw, output)
        self.renders += 1
        return png
