"""What the render-once service (cards.py) and dev mode's reloader (reload.py) need from a
renderer, and nothing more.

Chromium implements it (renderer.py); the test suite's fake (tests/support/fake.py)
implements it too, so the whole HTTP and CLI contract runs without a browser. Nothing
here imports Playwright.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from playwright.async_api import Route

    from .params import Output
    from .templates import Document


# A card's page makes at most this many requests, refused or not: images, stylesheets and
# fonts, and whatever else its scripts ask for. Past it the render ends at once, the card's
# fault (a page that floods the renderer with requests would hold it for its whole timeout).
MAX_PAGE_REQUESTS = 200
FLOODED = (
    f"The card's page made more than {MAX_PAGE_REQUESTS} requests; a card loads at most "
    f"{MAX_PAGE_REQUESTS} images, stylesheets and fonts."
)


class PageRequests(Protocol):
    """The requests of one card's page: fulfilled by the server's fetcher, or refused."""

    # Set at the request past MAX_PAGE_REQUESTS: the renderer ends the render, check() raises.
    flooded: asyncio.Event

    async def handle(self, route: Route) -> None: ...

    @property
    def policy(self) -> str:
        """The Content-Security-Policy of an untrusted card's page: the requests the
        fetcher would refuse anyway, refused by the page itself, never routed."""

    def blocked(self, count: int, first: list[tuple[str, str]]) -> None:
        """The page refused ``count`` requests under ``policy``; the first few as
        (URL, CSP directive): recorded as refusals (check() raises the first)."""

    def check(self) -> None:
        """Raise the first failure seen (an OgProxyError), if any and the card is strict;
        a card that is not renders without what failed (cards.py serves it degraded). A
        flooded page is the card's own fault, strict or not: InvalidDocument."""


class Renderer(Protocol):
    """Turns a card's document into image bytes, within a deadline.

    ``render`` raises the errors of errors.py (RenderTimeout, InvalidDocument,
    Overloaded, BrowserUnavailable) and nothing else a caller has to sort.
    """

    renders: int  # cards rendered since start
    waiting: int  # renders waiting for their turn now

    @property
    def ready(self) -> bool:
        """It can render now (for /readyz)."""

    @property
    def restarts(self) -> int:
        """Relaunches after a crash (a metric)."""

    @property
    def network_isolation(self) -> str:
        """How the renderer is kept off the network (isolation.py), for /readyz."""

    @property
    def browser_sandbox(self) -> str:
        """Who the browser runs as and whether its own sandbox is on (sandbox.py), for
        /readyz."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def revive(self) -> None:
        """Bring back a dead renderer in the background (the readiness probe calls it)."""

    async def reload_fonts(self) -> None:
        """Render with the fonts folder as it is now (dev mode's reloader: a saved font)."""

    async def render(
        self,
        doc: Document,
        output: Output,
        fetch: PageRequests | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """``doc`` as image bytes of ``output``'s size and format, by ``deadline``
        (``time.monotonic()``) at the latest; ``fetch`` serves its page's requests."""
