"""A renderer without a browser, for tests whose subject is HTTP, the cache or the CLI.

It implements ``ogproxy.rendering.Renderer``: each card becomes a real image of its
output's size and format (a flat colour derived from the document, so the same card is
the same bytes and two cards differ), encoded by the real encoder. Tests set what the
next renders do: take time, fail, hang past their deadline, or crash the "browser".
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
import pyvips

from ogproxy.encoder import encode
from ogproxy.errors import BrowserUnavailable, InvalidDocument, Overloaded, RenderTimeout
from ogproxy.params import Output
from ogproxy.rendering import PageRequests
from ogproxy.templates import Document

Fault = Literal["invalid", "hang", "crash"]


def card_pixels(
    doc: Document,
    output: Output,
    noise: bool = False,
    colours: int = 0,
    loaded: tuple[str, ...] = (),
) -> bytes:
    """A PNG of ``output``'s pixel size in one colour, taken from the document's text and
    the URLs its page ``loaded`` (a card without one of them looks different); with
    ``noise``, random pixels (incompressible: the largest image a size can give), of
    ``colours`` random colours if given (a palette keeps them all: a third of the bytes)."""
    width, height = output.width * output.scale, output.height * output.scale
    if noise and colours:
        indices = pyvips.Image.new_from_memory(
            os.urandom(width * height), width, height, 1, "uchar"
        )
        lut = pyvips.Image.new_from_memory(os.urandom(256 * 3), 256, 1, 3, "uchar")
        image = (indices % colours).cast("uchar").maplut(lut)
    elif noise:
        image = pyvips.Image.new_from_memory(
            os.urandom(width * height * 3), width, height, 3, "uchar"
        )
    else:
        r, g, b = hashlib.sha256("\n".join([doc.html, *loaded]).encode()).digest()[:3]
        image = pyvips.Image.black(width, height, bands=3).linear([1, 1, 1], [r, g, b])
    return bytes(image.cast("uchar").pngsave_buffer(compression=1))


@dataclass
class FakeRenderer:
    pages: int = 2
    queue: int = 64
    timeout: float = 10.0
    delay: float = 0.0  # seconds each render takes
    noise: bool = False  # cards of random pixels, not one colour
    colours: int = 0  # with noise: that many colours (at most 256), 0 for any
    faults: list[Fault] = field(default_factory=list)  # what the next renders do, in order
    renders: int = 0
    waiting: int = 0
    restarts: int = 0
    started: bool = False
    alive: bool = True
    documents: list[tuple[Document, Output]] = field(default_factory=list)
    page_requests: list[str] = field(default_factory=list)  # image URLs each card's page asks for
    # Image URLs each card's page refuses itself under its policy (PageRequests.blocked).
    page_blocked: list[str] = field(default_factory=list)
    network_isolation: str = "fake"
    browser_sandbox: str = "fake"
    font_reloads: int = 0  # times told that the fonts folder changed
    _slots: asyncio.Semaphore | None = None

    @property
    def ready(self) -> bool:
        return self.started and self.alive

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.pages)
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def revive(self) -> None:
        if not self.alive:
            self.alive = True
            self.restarts += 1

    async def reload_fonts(self) -> None:
        self.font_reloads += 1

    def crash(self) -> None:
        """The browser dies: not ready until revived (by the readiness probe or a render)."""
        self.alive = False

    async def render(
        self,
        doc: Document,
        output: Output,
        fetch: PageRequests | None = None,
        deadline: float | None = None,
    ) -> bytes:
        assert self._slots is not None, "render before start"
        if self.waiting >= self.queue:
            raise Overloaded(detail=f"{self.waiting} renders already waiting")
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            budget = self.timeout
            if deadline is not None:
                budget = max(0.05, min(budget, deadline - time.monotonic()))
            try:
                with anyio.fail_after(budget):
                    loaded = await self._ask(fetch)
                    await self._work(doc, output)
            except TimeoutError:
                raise RenderTimeout(detail=f"render exceeded {self.timeout:.1f} s") from None
        finally:
            self._slots.release()
        if fetch is not None:
            fetch.check()
        raw = card_pixels(doc, output, self.noise, self.colours, loaded)
        image = await anyio.to_thread.run_sync(
            lambda: encode(raw, output.format, palette=output.palette, quality=output.quality)
        )
        self.renders += 1
        return image

    async def _ask(self, fetch: PageRequests | None) -> tuple[str, ...]:
        """The page's requests, handed to the card's route handler as Chromium would; the
        URLs it fulfilled (none without a handler: Chromium aborts them)."""
        if fetch is None:
            return ()
        loaded = []
        for url in self.page_requests:
            route = FakeRoute(FakeRequest(url))
            await fetch.handle(cast(Any, route))
            assert route.settled, f"the route handler left {url} pending"
            if route.settled[0][0] == "fulfill":
                loaded.append(url)
        if self.page_blocked:
            fetch.blocked(
                len(self.page_blocked), [(url, "img-src") for url in self.page_blocked[:5]]
            )
        return tuple(loaded)

    async def _work(self, doc: Document, output: Output) -> None:
        if not self.alive:
            self.revive()  # the next render relaunches a dead browser, as Chromium's does
        self.documents.append((doc, output))
        fault = self.faults.pop(0) if self.faults else None
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault == "invalid":
            raise InvalidDocument("The card's HTML could not be rendered.")
        if fault == "crash":
            self.crash()
            raise BrowserUnavailable(detail="the fake browser crashed")
        if self.delay:
            await asyncio.sleep(self.delay)


@dataclass
class FakeRequest:
    """What ``CardFetch`` reads of a Playwright request."""

    url: str
    resource_type: str = "image"
    method: str = "GET"

    def is_navigation_request(self) -> bool:
        return self.resource_type == "document"


@dataclass
class FakeRoute:
    """A page's request as Playwright hands it to a route handler; records how it was settled."""

    request: FakeRequest
    settled: list[tuple[str, object]] = field(default_factory=list)  # ("abort", reason), ...

    async def abort(self, error_code: str | None = None) -> None:
        self.settled.append(("abort", error_code))

    async def fulfill(
        self, *, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.settled.append(("fulfill", status))
