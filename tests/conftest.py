from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from ogproxy import service
from ogproxy.assetcache import AssetCache
from ogproxy.browser import launch
from ogproxy.fetcher import Fetcher
from ogproxy.origins import AllowList
from ogproxy.renderer import ChromiumRenderer, Tab
from ogproxy.service import Service
from tests.support.cards import BUCKET, Renders, Served, make_settings, running
from tests.support.fake import FakeRenderer
from tests.support.s3server import Weed, weed_with_bucket

# Fixtures that start Chromium: a test using one is a `browser` test. Others that start
# it (a server process, `running()` without a renderer) carry the marker themselves.
BROWSER_FIXTURES = {"chromium_served", "chromium_client", "chromium_renders", "tab", "page"}
# Fixtures that start SeaweedFS (the real S3 server).
S3_FIXTURES = {"weed", "own_weed"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`system`: the tests that need the real thing (Chromium, SeaweedFS): `make test` runs
    them, `make test-fast` (``-m "not system"``) does not."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if BROWSER_FIXTURES & fixtures:
            item.add_marker(pytest.mark.browser)
        if S3_FIXTURES & fixtures:
            item.add_marker(pytest.mark.s3)
        if item.get_closest_marker("browser") or item.get_closest_marker("s3"):
            item.add_marker(pytest.mark.system)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Report sections as UTF-8 that can be sent: the fuzz tests generate lone surrogates,
    which reach what Hypothesis attaches to a report, and which a pytest-xdist worker
    cannot send to the controller (the worker dies)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode())
        for title, text in report.sections
    ]


@pytest.fixture(autouse=True)
def _access_lines_through_logging() -> Iterator[None]:
    """A command run in-process (`serve` through CliRunner) points the access log at
    stderr for the whole process: put it back, so later tests see lines in caplog."""
    from ogproxy.accesslog import SINK

    yield
    SINK.__init__()  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _chromium_only_in_browser_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that starts a renderer in this process must be marked `browser`.

    So `pytest -m "not browser"` stays the fast loop it says it is.
    """
    if request.node.get_closest_marker("browser") is None:

        async def refuse(self: ChromiumRenderer) -> None:
            raise AssertionError("this test starts Chromium: mark it @pytest.mark.browser")

        monkeypatch.setattr(ChromiumRenderer, "start", refuse)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _renders(pair: Served) -> Renders:
    service = pair[0]
    return lambda: int(service.renderer.renders)


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One app per test module on the fake renderer: the HTTP contract, no browser."""
    settings = make_settings(tmp_path_factory.mktemp("cache"))
    async with running(settings, FakeRenderer()) as pair:
        yield pair


@pytest.fixture
def client(served: Served) -> httpx.AsyncClient:
    return served[1]


@pytest.fixture
def renders(served: Served) -> Renders:
    return _renders(served)


@pytest.fixture(scope="module")
async def chromium_served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One app per test module on real Chromium (pixels, fonts): the launch is paid once."""
    async with running(make_settings(tmp_path_factory.mktemp("cache"))) as pair:
        yield pair


@pytest.fixture
def chromium_client(chromium_served: Served) -> httpx.AsyncClient:
    return chromium_served[1]


@pytest.fixture
def chromium_renders(chromium_served: Served) -> Renders:
    return _renders(chromium_served)


@pytest.fixture(scope="module")
async def tab() -> AsyncIterator[Tab]:
    """One page on real Chromium per test module, loaded the way the renderer loads cards
    (``Tab.load``: text changed in place when the shell matches)."""
    async with async_playwright() as pw:
        browser = await launch(pw)
        context = await browser.new_context(viewport={"width": 1200, "height": 630}, offline=True)
        page = await context.new_page()
        yield Tab(page, await context.new_cdp_session(page))
        await browser.close()


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """One real S3 server (SeaweedFS) for the session, with the bucket ``BUCKET``."""
    with weed_with_bucket(tmp_path_factory.mktemp("weed"), BUCKET) as server:
        yield server


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """A prefix of its own in the shared bucket, for one test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name[:40])
    return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def fetcher(tmp_path: Path) -> AsyncIterator[Any]:
    """Fetchers over an allow-list, each with an asset cache of its own; closed after."""
    made: list[Fetcher] = []

    def build(*origins: str, **options: Any) -> Fetcher:
        f = Fetcher(AllowList(origins), AssetCache(tmp_path / f"assets{len(made)}"), **options)
        made.append(f)
        return f

    yield build
    for f in made:
        await f.close()


@pytest.fixture
def fake_chromium(monkeypatch: pytest.MonkeyPatch) -> list[FakeRenderer]:
    """Every app or CLI command this test builds renders on a fake renderer (no browser):
    for commands run in-process (`render`, `warm`) whose subject is not the pixels."""
    made: list[FakeRenderer] = []

    def build(settings: object) -> FakeRenderer:
        made.append(FakeRenderer())
        return made[-1]

    monkeypatch.setattr(service, "chromium", build)
    return made


@dataclass
class Fake:
    """An app on the fake renderer: the HTTP contract without a browser."""

    service: Service
    client: httpx.AsyncClient
    renderer: FakeRenderer


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[Fake]:
    """A new app (its own cache) on the fake renderer, for one test, in milliseconds."""
    renderer = FakeRenderer()
    async with running(make_settings(tmp_path / "cache"), renderer) as (service, client):
        yield Fake(service, client, renderer)
