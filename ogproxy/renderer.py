"""Rendering cards in long-lived headless Chromium processes, one card never touching another.

Isolation model (measured, see README "Security"):

- A document never shares a JavaScript realm with another document. ``set_content`` on a
  reused page keeps the same ``window``: globals, patched prototypes, timers, workers and
  memory of one document survive into the next (a hostile card defaced every later card
  of its tab that way). So:
- **Untrusted documents** (raw ``html``, and custom templates unless the operator marks
  them trusted) each render in a browser context of their own, closed right after the
  capture. Chromium never shares a renderer process between contexts, so closing it ends
  the card's timers, workers, CPU and memory with it. Cost: a new context and page per
  card (measured in bench/, about +40 ms on a miss). They render in a browser of their
  own, driven by a Playwright driver of its own at a lower priority, and their pages
  refuse by themselves what the fetcher would refuse (``_GUARD``): a page that asks for
  thousands of URLs costs its own renderer, not the driver and event loop the built-in
  templates render through.
- **Trusted documents** (the built-in templates: our own markup and script, the caller's
  text set as text-node data, never parsed) keep the fast path: a pool of tabs in one
  long-lived context that no untrusted document ever enters. A tab keeps the template
  shell it loaded and only has its text changed in place; every update is verified (each
  slot holds exactly its text, the window has exactly the globals it had) or the card is
  loaded again in a new window. A different shell is loaded over the old one with
  ``set_content``: only built-in code has run in that window, and a new page per shell
  switch measured 2.3x slower on cards that alternate shells (bench/, 2026-11-25).
- The browser itself has no network (isolation.py), and its environment holds no secret;
  where the machine allows, it runs as a user of its own and in its own sandbox (sandbox.py).

Capture uses Chromium's fast PNG mode and the pixels are re-encoded outside the browser
(see encoder.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from playwright.async_api import CDPSession, Page, Playwright, Route
from playwright.async_api import Error as PlaywrightError

from . import pagepolicy, procfs
from .browser import Chromium, start_driver
from .config import Settings
from .encoder import encode
from .errors import BrowserUnavailable, InvalidDocument, Overloaded, RenderTimeout
from .fonts import discard, fontconfig_env
from .isolation import NetworkIsolation, NetworkJail
from .params import Output
from .priority import (
    UNTRUSTED_NICE,
    keep_children_from_raising_priority,
    lower_children,
    lower_library_threads,
    lower_this_thread,
)
from .rendering import FLOODED, PageRequests
from .sandbox import DEFAULT_BROWSER_USER, BrowserSandbox, Sandbox
from .templates import Document

log = logging.getLogger("ogproxy.renderer")

# A page that has rendered this many cards is replaced by a fresh one: documents loaded
# with set_content leave a little behind each time, and a new page frees all of it.
RECYCLE_AFTER = 500

# Finds the marker text nodes of a freshly loaded shell once, then sets their text and
# re-runs the template's fitting script. Text node data is never parsed as HTML. The
# answer is false (and the caller starts again in a new window) unless every slot ends
# up holding exactly its text and the window has exactly the globals it had after its
# first shell (only built-in shells ever run here; this catches a bug that leaks state).
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
  const ok = Object.entries(slots).every(([m, text]) => window.__ogSlots[m].data === text);
  const globals = Object.getOwnPropertyNames(window).length;
  if (window.__ogGlobals === undefined) {
    window.__ogGlobals = globals + 1;  // counting itself
    return ok;
  }
  return ok && globals === window.__ogGlobals;
}"""

# What a whole document waits for before its capture: its own ready promise (templates
# fit their text in it), every image decoded, and every font loaded.
_SETTLE_JS = """async () => {
  await (window.__ogReady || null);
  await Promise.all(Array.from(document.images, (img) => img.decode().catch(() => null)));
  await document.fonts.ready;
}"""


async def _abort(route: Route) -> None:
    await route.abort("blockedbyclient")


async def _capture(cdp: CDPSession) -> bytes:
    shot = await cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
    return base64.b64decode(shot["data"])


# What V8 and Blink say when an allocation fails (typed arrays, wasm memory, canvas pixels).
_ALLOCATION_FAILED = ("allocation failed", "out of memory", "could not allocate")


@dataclass(eq=False)
class _Trouble:
    """What a page did that makes its capture something other than the card: its renderer
    process crashed (killed, or out of memory), or a script died of a failed allocation
    (the page lives on, blank or half drawn). Cleared before a render, checked after
    its capture: the crash event may arrive after the capture returned."""

    crashed: bool = False
    out_of_memory: str | None = None

    def listen(self, page: Page) -> None:
        page.on("crash", self._crash)
        page.on("pageerror", self._error)

    def _crash(self, page: Page) -> None:
        self.crashed = True

    def _error(self, error: PlaywrightError) -> None:
        if error.name == "RangeError" and any(
            s in error.message.lower() for s in _ALLOCATION_FAILED
        ):
            self.out_of_memory = error.message

    def clear(self) -> None:
        self.crashed, self.out_of_memory = False, None

    def check(self) -> None:
        if self.crashed:
            raise _Crashed("Page crashed during the render")
        if self.out_of_memory is not None:
            raise _OutOfMemory(self.out_of_memory)


@dataclass(eq=False)
class Tab:
    """A page of the trusted pool; replaced by a fresh one when its browser was relaunched."""

    page: Page
    cdp: CDPSession
    shell: str | None = None  # the loaded shell, None if none is loaded
    size: tuple[int, int, int] = (0, 0, 0)  # width, height, scale
    renders: int = field(default=0)
    owner: Chromium | None = None
    generation: int = 0
    fetch: PageRequests | None = None  # serves the current card's requests; None: refused
    trouble: _Trouble = field(default_factory=_Trouble)  # of its current page

    @classmethod
    async def open(cls, owner: Chromium) -> Tab:
        context = await owner.context()
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        tab = cls(page, cdp, owner=owner, generation=owner.generation)
        tab.trouble.listen(page)
        await page.route("**/*", tab._route)
        return tab

    async def _route(self, route: Route) -> None:
        # Built-in shells make no request (their images are inlined first); a trusted
        # custom template's assets go through its card's fetcher like anyone else's.
        if self.fetch is not None:
            await self.fetch.handle(route)
        else:
            await _abort(route)

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

    async def _new_page(self) -> None:
        """A new window for a new shell: nothing of the last document's realm is kept."""
        context = self.page.context
        await self.close()
        self.page = await context.new_page()
        self.trouble.listen(self.page)
        self.cdp = await context.new_cdp_session(self.page)
        await self.page.route("**/*", self._route)
        self.shell, self.size = None, (0, 0, 0)

    async def load(self, doc: Document, output: Output) -> None:
        if self.size[2] not in (0, output.scale):
            # Rasterised at another scale, the page keeps tiles that change later cards'
            # edge pixels (measured: 8 of 8 cards differed after a scale=2 card).
            await self._new_page()
        await self._resize(output)
        if doc.shell is not None:
            if self.shell != doc.shell:  # the text itself: a hash could collide
                self.shell = None
                await self.page.set_content(doc.shell, wait_until="load")
                self.shell = doc.shell
            if await self.page.evaluate(_UPDATE_JS, doc.slots):
                return
            # The page is not what this shell should be: start again from a new window.
            await self._new_page()
            await self._resize(output)
        self.shell = None
        await self.page.set_content(doc.html, wait_until="load")
        await self.page.evaluate(_SETTLE_JS)

    async def _resize(self, output: Output) -> None:
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

    async def capture(self) -> bytes:
        return await _capture(self.cdp)


def _encode(raw: bytes, output: Output) -> bytes:
    lower_this_thread()
    image = encode(raw, output.format, palette=output.palette, quality=output.quality)
    lower_library_threads()
    return image


NAVIGATED = "The card's HTML navigated away from itself; it must stay on its page."
OUT_OF_MEMORY = "The card's script ran out of memory; its page was not rendered."


class _Navigated(Exception):
    """The card's document left itself (meta refresh, location=...)."""


class _Crashed(Exception):
    """The card's page crashed during the render (its process was killed or ran out of
    memory), even if a capture came back."""


class _OutOfMemory(Exception):
    """A script of the card's page died of a failed allocation."""


class _Flooded(Exception):
    """The card's page made more requests than a card may (rendering.MAX_PAGE_REQUESTS)."""


class _BrowserBroke(Exception):
    """A render attempt failed for the browser's reasons, not the card's."""


# What a render attempt may fail of, sorted by ChromiumRenderer._classify.
_FAILED = (TimeoutError, _Navigated, _Crashed, _OutOfMemory, _Flooded, PlaywrightError)


@dataclass(eq=False)
class _Lease:
    """A tab out of the pool for one attempt; ``stale``: replace it before it goes back."""

    tab: Tab
    stale: bool = False


async def _unless_flooded(work: Coroutine[Any, Any, bytes], fetch: PageRequests | None) -> bytes:
    """``work``, cut short (``_Flooded``) as soon as the page makes more requests than a card
    may: a page that floods the renderer with requests costs it no more than that."""
    if fetch is None:
        return await work
    task = asyncio.ensure_future(work)
    flooded = asyncio.ensure_future(fetch.flooded.wait())
    try:
        await asyncio.wait({task, flooded}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        flooded.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, PlaywrightError):
                await task
    if fetch.flooded.is_set():
        raise _Flooded
    return task.result()


async def _load_capture(
    page: Page, cdp: CDPSession, doc: Document, fetch: PageRequests | None
) -> bytes:
    """An untrusted card's whole document, loaded and settled in its fresh page under the
    policy, captured."""
    try:
        policy = fetch.policy if fetch is not None else pagepolicy.NO_REQUESTS
        await page.set_content(pagepolicy.guarded(doc.html, policy), wait_until="load")
        await page.evaluate(_SETTLE_JS)
        count, first = pagepolicy.report(await page.evaluate(pagepolicy.REPORT_JS))
        if fetch is not None and count:
            fetch.blocked(count, first)
    except PlaywrightError as exc:
        if not page.is_closed() and not page.url.startswith("about:"):
            raise _Navigated(str(exc)) from exc
        raise  # sorted by _classify
    if not page.url.startswith("about:"):
        raise _Navigated(page.url)
    return await _capture(cdp)


class ChromiumRenderer:
    """A bounded pool of tabs over one or more Chromium processes.

    Renders wait for a free tab; past ``queue`` waiting renders the answer is Overloaded
    (503) at once. An untrusted card takes a tab only as its turn (the tab is not touched)
    and renders in a context of its own on the tab's browser. A browser that died is
    relaunched by the next render that needs it, and a render it broke is retried once.
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
        network_isolation: NetworkIsolation = "auto",
        browser_sandbox: BrowserSandbox = "auto",
        browser_user: str = DEFAULT_BROWSER_USER,
    ) -> None:
        self._pages = pages
        self._browsers_wanted = max(1, min(browsers, pages))
        self._executable = chromium
        self._timeout = timeout
        self._queue_limit = queue
        self._fonts_dir = fonts_dir
        self._isolation: NetworkIsolation = network_isolation
        self._jail: NetworkJail | None = None
        self._sandbox_wanted, self._browser_user = browser_sandbox, browser_user
        self._sandbox: Sandbox | None = None
        self._pw: Playwright | None = None
        self._chromiums: list[Chromium] = []  # the trusted pool's
        self._untrusted: Chromium | None = None  # launched at the first untrusted card
        self._untrusted_pw: Playwright | None = None  # its own driver (see _untrusted_browser)
        self._untrusted_lock = asyncio.Lock()
        self._env: dict[str, str] = {}
        self._pool: asyncio.Queue[Tab] = asyncio.Queue()
        self._reviving: asyncio.Task[None] | None = None
        self.waiting = 0
        self.renders = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> ChromiumRenderer:
        return cls(
            pages=settings.pages,
            browsers=settings.browsers,
            chromium=settings.chromium,
            timeout=settings.render_timeout,
            queue=settings.queue,
            fonts_dir=settings.fonts_dir,
            network_isolation=settings.network_isolation,
            browser_sandbox=settings.browser_sandbox,
            browser_user=settings.browser_user,
        )

    @property
    def network_isolation(self) -> str:
        """``namespace`` or ``flags`` (see isolation.py); ``none`` before start."""
        return self._jail.level if self._jail else "none"

    @property
    def browser_sandbox(self) -> str:
        """``uid+chromium``, ``uid``, ``chromium`` or ``none`` (see sandbox.py)."""
        return self._sandbox.level if self._sandbox else "none"

    @property
    def restarts(self) -> int:
        """Browser launches beyond the first of each process."""
        browsers = [*self._chromiums, *([self._untrusted] if self._untrusted else [])]
        return sum(max(0, c.launches - 1) for c in browsers)

    @property
    def ready(self) -> bool:
        return bool(self._chromiums) and any(c.alive for c in self._chromiums)

    async def start(self) -> None:
        keep_children_from_raising_priority()
        self._jail = NetworkJail(self._isolation)
        try:
            self._sandbox = Sandbox(self._sandbox_wanted, self._browser_user, self._jail)
            self._pw = await start_driver()
            # Playwright's driver is idle now: lowered before it launches Chromium, every
            # Chromium process and thread is born at the render priority (no race with the
            # processes Chromium starts on its own, like the network service).
            lower_children()
            self._env = env = fontconfig_env(self._fonts_dir)
            self._chromiums = [
                Chromium(self._pw, self._executable, env, self._sandbox)
                for _ in range(self._browsers_wanted)
            ]
            for i in range(self._pages):
                self._pool.put_nowait(await Tab.open(self._chromiums[i % len(self._chromiums)]))
            # After the first launch, which settles the sandbox level (sandbox.relax).
            log.info(
                "renderer network isolation: %s, browser sandbox: %s",
                self._jail.level,
                self._sandbox.level,
            )
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

    async def reload_fonts(self) -> None:
        """Relaunch the browsers on the fonts folder as it is now (fontconfig reads it at
        launch); a render one was in the middle of is retried, as after a crash."""
        env = await anyio.to_thread.run_sync(fontconfig_env, self._fonts_dir)
        old, self._env = self._env, env
        for chromium in [*self._chromiums, *([self._untrusted] if self._untrusted else [])]:
            await chromium.relaunch(env)
        discard(old)

    async def stop(self) -> None:
        if self._reviving is not None:
            self._reviving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reviving
        for chromium in [*self._chromiums, *([self._untrusted] if self._untrusted else [])]:
            await chromium.close()
        self._chromiums.clear()
        self._untrusted = None
        for driver in (self._pw, self._untrusted_pw):
            if driver is not None:
                await driver.stop()
        self._pw = self._untrusted_pw = None
        if self._sandbox is not None:
            self._sandbox.close()
        discard(self._env)  # the fonts folder made for the browsers, if any
        self._env = {}
        if self._jail is not None:
            self._jail.close()

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[_Lease]:
        """A tab of the pool for one render attempt, given back here and only here.

        Past ``queue`` waiting renders it is Overloaded at once. A tab of a browser that
        was relaunched is replaced before use; one the attempt marked ``stale`` is
        replaced before it goes back. A replacement that fails (BrowserUnavailable)
        gives the old tab back instead, so the pool never shrinks.
        """
        if self.waiting >= self._queue_limit:
            raise Overloaded(detail=f"{self.waiting} renders already waiting")
        self.waiting += 1
        try:
            lease = _Lease(await self._pool.get())
        finally:
            self.waiting -= 1
        try:
            if not lease.tab.usable:
                await self._replace(lease)
            yield lease
        finally:
            try:
                if lease.stale:
                    await self._replace(lease)
            finally:
                self._pool.put_nowait(lease.tab)

    async def _replace(self, lease: _Lease) -> None:
        """A new tab in the lease's, relaunching its browser if needed."""
        old = lease.tab
        await old.close()
        assert old.owner is not None
        try:
            lease.tab = await Tab.open(old.owner)
        except PlaywrightError as exc:
            raise BrowserUnavailable(detail=f"cannot relaunch Chromium: {exc}") from exc
        lease.stale = False

    async def render(
        self,
        doc: Document,
        output: Output,
        fetch: PageRequests | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """Render a card to image bytes of ``output``'s size and format.

        ``fetch`` serves the requests of the card's page (in the pool too, for a trusted
        custom template); without it every request is refused. After the capture,
        ``fetch.check()`` raises the first of its failures if the card is strict (else the
        card is rendered without them). The render is cut off after the timeout, or at ``deadline``
        (``time.monotonic()``) if one is given. A browser that broke it gets one more try.
        """
        for attempt in (1, 2):
            try:
                raw = await self._attempt(doc, output, fetch, deadline)
                break
            except _BrowserBroke as exc:
                log.warning("render attempt %d failed: %s", attempt, exc)
                if attempt == 2:
                    raise BrowserUnavailable(detail=f"render failed twice: {exc}") from exc
        # The tab is free for the next card while this one is encoded.
        if fetch is not None:
            fetch.check()
        image = await anyio.to_thread.run_sync(_encode, raw, output)
        self.renders += 1
        return image

    async def _attempt(
        self, doc: Document, output: Output, fetch: PageRequests | None, deadline: float | None
    ) -> bytes:
        """One try on one tab: the raw capture, or the error it means (``_classify``)."""
        try:
            async with self._lease() as lease:
                budget = self._timeout
                if deadline is not None:  # the wait for a tab counts against it
                    budget = max(0.05, min(budget, deadline - time.monotonic()))
                try:
                    with anyio.fail_after(budget):
                        if doc.trusted:
                            raw = await self._in_pool(lease.tab, doc, output, fetch)
                        else:
                            raw = await self._isolated(doc, output, fetch)
                except _FAILED:
                    # A trusted tab a card failed in (stuck in a script, navigated, broken,
                    # out of memory, flooded) is thrown away so the next card starts clean;
                    # an untrusted card never touched its tab.
                    lease.stale = doc.trusted
                    raise
                if doc.trusted:
                    lease.tab.renders += 1
                    lease.stale = lease.tab.renders >= RECYCLE_AFTER
                return raw
        except _FAILED as exc:
            raise await self._classify(exc, doc) from exc

    async def _classify(self, exc: Exception, doc: Document) -> Exception:
        """What a failed attempt means: RenderTimeout, the card's fault (InvalidDocument),
        or a broken browser (_BrowserBroke, tried once more). Playwright tells these
        apart only in its messages."""
        if isinstance(exc, TimeoutError):
            return RenderTimeout(detail=f"render exceeded {self._timeout:.1f} s")
        if isinstance(exc, _OutOfMemory):
            return InvalidDocument(OUT_OF_MEMORY, detail=str(exc)[:300])
        if isinstance(exc, _Flooded):
            return InvalidDocument(FLOODED)
        text = str(exc)
        if (
            isinstance(exc, _Navigated)
            or "context was destroyed" in text
            or (not doc.trusted and "navigat" in text.lower())
        ):
            return InvalidDocument(NAVIGATED)
        if not doc.trusted and self._untrusted is not None and await self._untrusted.responsive():
            # Its own document broke it (a rejected ready promise, a closed window, ...):
            # the card's fault, not the browser's.
            return InvalidDocument("The card's HTML could not be rendered.", detail=text[:300])
        return _BrowserBroke(text)

    async def _in_pool(
        self, tab: Tab, doc: Document, output: Output, fetch: PageRequests | None
    ) -> bytes:
        tab.fetch = fetch
        tab.trouble.clear()
        try:
            raw = await _unless_flooded(self._load_capture(tab, doc, output), fetch)
            tab.trouble.check()
            return raw
        except PlaywrightError as exc:
            if tab.navigated:
                raise _Navigated(str(exc)) from exc
            raise
        finally:
            tab.fetch = None

    @staticmethod
    async def _load_capture(tab: Tab, doc: Document, output: Output) -> bytes:
        await tab.load(doc, output)
        return await tab.capture()

    async def _untrusted_browser(self) -> Chromium:
        """The untrusted cards' browser, made at the first one, driven by a Playwright
        driver of its own: every request of its pages passes through its driver (to be
        routed), so a card that floods its page with requests backs up that driver's
        pipe only, never the one the built-in templates render through."""
        async with self._untrusted_lock:
            if self._untrusted is None:
                if self._untrusted_pw is None:
                    before = set(procfs.children(os.getpid()))
                    self._untrusted_pw = await start_driver()
                    # It, and the browser it launches, yield to the built-in renders.
                    lower_children(
                        sorted(set(procfs.children(os.getpid())) - before), UNTRUSTED_NICE
                    )
                self._untrusted = Chromium(
                    self._untrusted_pw, self._executable, self._env, self._sandbox
                )
            return self._untrusted

    async def _isolated(self, doc: Document, output: Output, fetch: PageRequests | None) -> bytes:
        """Render in a new context of the untrusted browser, closed right after the capture.

        That browser is a process of its own: its GPU process, its renderers and its
        restarts are never shared with the trusted pool.
        """
        browser = await self._untrusted_browser()
        fresh = await browser.isolated(output)
        context, page, cdp = fresh.context, fresh.page, fresh.cdp
        try:
            if fetch is not None:
                await context.unroute("**/*")
                await context.route("**/*", fetch.handle)
            trouble = _Trouble()
            trouble.listen(page)
            raw = await _unless_flooded(_load_capture(page, cdp, doc, fetch), fetch)
            trouble.check()
            return raw
        finally:
            await browser.retire(fresh)
