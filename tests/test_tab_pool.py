"""ChromiumRenderer's pool of tabs, without a browser: whatever a render ends in, its tab
goes back exactly once (replaced after a trusted card failed in it), and each failure
becomes the one ogproxy error it means."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

import pytest
from playwright.async_api import Error as PlaywrightError

from ogproxy import renderer as renderer_module
from ogproxy.errors import BrowserUnavailable, InvalidDocument, Overloaded, RenderTimeout
from ogproxy.params import Output
from ogproxy.renderer import ChromiumRenderer, Tab, _Navigated, _Trouble

pytestmark = pytest.mark.anyio
PAGES = 2


@dataclass(eq=False)
class FakeTab:
    """What the pool asks of a tab; ``fault`` is raised by its next load, which first
    waits for ``gate`` (if given); ``dies`` is what its page does during each load and
    the tab only learns of through its page's events (``trouble``)."""

    serial: int
    usable: bool = True
    navigated: bool = False
    fault: BaseException | None = None
    renders: int = 0
    owner: object = None
    closed: bool = False
    fetch: object = None
    gate: asyncio.Event | None = None
    loading: asyncio.Event = field(default_factory=asyncio.Event)
    dies: Literal["crash", "out of memory"] | None = None
    trouble: _Trouble = field(default_factory=_Trouble)

    async def load(self, doc: object, output: Output) -> None:
        self.loading.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fault is not None:
            raise self.fault
        if self.dies == "crash":
            self.trouble.crashed = True
        elif self.dies == "out of memory":
            self.trouble.out_of_memory = "Array buffer allocation failed"

    async def capture(self) -> bytes:
        return b"raw"

    async def close(self) -> None:
        self.closed = True


@dataclass
class Pool:
    renderer: ChromiumRenderer
    opened: list[FakeTab] = field(default_factory=list)
    relaunch_fails: bool = False

    @property
    def tabs(self) -> list[FakeTab]:
        return list(self.renderer._pool._queue)  # type: ignore[attr-defined]

    def first(self) -> FakeTab:
        return self.tabs[0]


class Untrusted:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def responsive(self) -> bool:
        return self.answers


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Pool:
    renderer = ChromiumRenderer(pages=PAGES, chromium=None, timeout=0.3, queue=2)
    made = Pool(renderer)

    async def open_tab(owner: object) -> FakeTab:
        if made.relaunch_fails:
            raise PlaywrightError("cannot launch")
        tab = FakeTab(100 + len(made.opened), owner=owner)
        made.opened.append(tab)
        return tab

    monkeypatch.setattr(Tab, "open", staticmethod(open_tab))
    monkeypatch.setattr(renderer_module, "_encode", lambda raw, output: raw + b" encoded")
    for serial in range(PAGES):
        renderer._pool.put_nowait(FakeTab(serial, owner=object()))  # type: ignore[arg-type]
    return made


def doc(trusted: bool) -> Any:
    return SimpleNamespace(trusted=trusted)


def untrusted_fails_with(pool: Pool, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    async def isolated(*args: object) -> bytes:
        raise exc

    monkeypatch.setattr(pool.renderer, "_isolated", isolated)


def check_pool(pool: Pool) -> None:
    tabs = pool.tabs
    assert len(tabs) == PAGES and len(set(map(id, tabs))) == PAGES
    assert pool.renderer.waiting == 0


async def test_success_returns_the_same_tab(pool: Pool) -> None:
    tab = pool.first()
    assert await pool.renderer.render(doc(True), Output()) == b"raw encoded"
    check_pool(pool)
    assert tab in pool.tabs and tab.renders == 1 and pool.opened == []


async def test_a_worn_tab_is_replaced(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderer_module, "RECYCLE_AFTER", 1)
    tab = pool.first()
    await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert tab.closed and tab not in pool.tabs and len(pool.opened) == 1


async def test_a_trusted_timeout_replaces_the_tab(pool: Pool) -> None:
    tab = pool.first()
    tab.gate = asyncio.Event()  # never set
    with pytest.raises(RenderTimeout):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert tab.closed and tab not in pool.tabs


async def test_an_untrusted_timeout_keeps_the_tab(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(*args: object) -> bytes:
        await asyncio.sleep(10)
        return b""

    monkeypatch.setattr(pool.renderer, "_isolated", hang)
    tabs = pool.tabs
    with pytest.raises(RenderTimeout):
        await pool.renderer.render(doc(False), Output())
    check_pool(pool)
    assert set(map(id, pool.tabs)) == set(map(id, tabs)) and pool.opened == []


async def test_an_untrusted_card_that_navigates(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    untrusted_fails_with(pool, monkeypatch, _Navigated("https://elsewhere.test/"))
    with pytest.raises(InvalidDocument, match="navigated away"):
        await pool.renderer.render(doc(False), Output())
    check_pool(pool)
    assert pool.opened == []


@pytest.mark.parametrize("message", ["Execution context was destroyed", "Navigation interrupted"])
async def test_an_untrusted_card_whose_load_navigated(
    pool: Pool, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    untrusted_fails_with(pool, monkeypatch, PlaywrightError(message))
    with pytest.raises(InvalidDocument, match="navigated away"):
        await pool.renderer.render(doc(False), Output())
    check_pool(pool)


async def test_a_trusted_card_that_navigated_replaces_the_tab(pool: Pool) -> None:
    tab = pool.first()
    tab.fault, tab.navigated = PlaywrightError("Target page closed"), True
    with pytest.raises(InvalidDocument, match="navigated away"):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert tab.closed and tab not in pool.tabs


async def test_a_trusted_card_whose_script_ran_out_of_memory_is_a_422(pool: Pool) -> None:
    tab = pool.first()
    tab.dies = "out of memory"  # the capture comes back, blank
    with pytest.raises(InvalidDocument) as refused:
        await pool.renderer.render(doc(True), Output())
    assert "ran out of memory" in refused.value.public_message
    check_pool(pool)
    assert tab.closed and tab not in pool.tabs  # its memory goes with it


async def test_a_trusted_page_that_crashed_yields_no_bytes(pool: Pool) -> None:
    first, second = pool.tabs
    first.dies = second.dies = "crash"  # each capture comes back, then the crash event
    with pytest.raises(BrowserUnavailable):  # tried twice: ours, not the card's
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert first.closed and second.closed and pool.renderer.renders == 0
    assert await pool.renderer.render(doc(True), Output()) == b"raw encoded"  # fresh tabs


async def test_a_trusted_card_whose_context_was_destroyed(pool: Pool) -> None:
    tab = pool.first()
    tab.fault = PlaywrightError("Execution context was destroyed, most likely a navigation")
    with pytest.raises(InvalidDocument, match="navigated away"):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert tab.closed


async def test_a_broken_trusted_tab_is_replaced_and_the_render_tried_again(pool: Pool) -> None:
    tab = pool.first()
    tab.fault = PlaywrightError("Target crashed")
    assert await pool.renderer.render(doc(True), Output()) == b"raw encoded"
    check_pool(pool)
    assert tab.closed and len(pool.opened) == 1


async def test_two_broken_attempts_are_a_503(pool: Pool) -> None:
    for tab in pool.tabs:
        tab.fault = PlaywrightError("Target crashed")
    with pytest.raises(BrowserUnavailable, match="failed twice"):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    assert len(pool.opened) == 2


async def test_an_untrusted_card_that_broke_its_own_page(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool.renderer._untrusted = Untrusted(answers=True)  # type: ignore[assignment]
    untrusted_fails_with(pool, monkeypatch, PlaywrightError("ready promise rejected"))
    with pytest.raises(InvalidDocument) as refused:
        await pool.renderer.render(doc(False), Output())
    assert "could not be rendered" in refused.value.public_message
    assert refused.value.detail == "ready promise rejected"
    check_pool(pool)
    assert pool.opened == []


async def test_an_untrusted_browser_that_died_is_tried_again(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool.renderer._untrusted = Untrusted(answers=False)  # type: ignore[assignment]
    untrusted_fails_with(pool, monkeypatch, PlaywrightError("Browser closed"))
    with pytest.raises(BrowserUnavailable, match="failed twice"):
        await pool.renderer.render(doc(False), Output())
    check_pool(pool)
    assert pool.opened == []


async def test_a_stale_tab_that_cannot_be_replaced_keeps_its_slot(pool: Pool) -> None:
    for tab in pool.tabs:
        tab.usable = False
    pool.relaunch_fails = True
    with pytest.raises(BrowserUnavailable, match="cannot relaunch"):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)
    pool.relaunch_fails = False
    assert await pool.renderer.render(doc(True), Output()) == b"raw encoded"
    check_pool(pool)


async def test_a_failed_replacement_after_a_failure_keeps_the_slot(pool: Pool) -> None:
    tab = pool.first()
    tab.fault = PlaywrightError("Target crashed")
    pool.relaunch_fails = True
    with pytest.raises(BrowserUnavailable, match="cannot relaunch"):
        await pool.renderer.render(doc(True), Output())
    check_pool(pool)


async def test_a_cancelled_render_gives_its_tab_back(pool: Pool) -> None:
    tab = pool.first()
    tab.gate = asyncio.Event()  # never set
    task = asyncio.create_task(pool.renderer.render(doc(True), Output()))
    await tab.loading.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check_pool(pool)
    assert tab in pool.tabs and not tab.closed


async def test_past_the_queue_limit_is_overloaded_at_once(pool: Pool) -> None:
    release = asyncio.Event()
    for tab in pool.tabs:
        tab.gate = release
    pool.renderer._timeout = 10
    busy = [asyncio.create_task(pool.renderer.render(doc(True), Output())) for _ in range(4)]
    await asyncio.sleep(0.05)  # two render, two wait
    with pytest.raises(Overloaded):
        await pool.renderer.render(doc(True), Output())
    release.set()
    assert await asyncio.gather(*busy) == [b"raw encoded"] * 4
    check_pool(pool)
