from __future__ import annotations

import io
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Page
from starlette.applications import Starlette

# bench/harness.py: the process harness the bench and the tests share.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from s3server import Weed, weed_with_bucket  # after the harness is on the path

from ogproxy import sign_url
from ogproxy.app import create_app
from ogproxy.assetcache import AssetCache
from ogproxy.config import Settings
from ogproxy.fetcher import Fetcher
from ogproxy.origins import AllowList
from ogproxy.renderer import Renderer

SECRET = "test-secret-0123456789abcdef"
BASE = "http://ogproxy.test/og.png"
BUCKET = "ogproxy-tests"


# Fixtures that start Chromium: a test using one is a `browser` test. Others that start
# it (a server process, `running()`) carry the marker themselves.
BROWSER_FIXTURES = {"served", "client", "renders", "tab", "page", "app_thread"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _chromium_only_in_browser_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that starts a renderer in this process must be marked `browser`.

    So `pytest -m "not browser"` stays the fast loop it says it is.
    """
    if request.node.get_closest_marker("browser") is None:

        async def refuse(self: Renderer) -> None:
            raise AssertionError("this test starts Chromium: mark it @pytest.mark.browser")

        monkeypatch.setattr(Renderer, "start", refuse)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def signed(
    params: dict[str, Any] | list[tuple[str, Any]], secret: str = SECRET, base: str = BASE
) -> str:
    return sign_url(base, secret, params)


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_at(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The colour of one pixel of an RGB(A) image."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def max_channel(diff: Image.Image) -> int:
    """The largest value in any channel of a (difference) image."""
    extrema = diff.getextrema()
    return max(int(band[1]) for band in extrema if isinstance(band, tuple))


Served = tuple[Starlette, httpx.AsyncClient]
Renders = Callable[[], int]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app with its lifespan entered (real Chromium), and a client bound to it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ogproxy.test") as client:
            yield app, client


def make_settings(cache_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"secrets": (SECRET,), "cache_dir": cache_dir, "pages": 2}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """One app per test module: the browser launch is paid once."""
    async with running(make_settings(tmp_path_factory.mktemp("cache"))) as pair:
        yield pair


@pytest.fixture
def client(served: tuple[Starlette, httpx.AsyncClient]) -> httpx.AsyncClient:
    return served[1]


@pytest.fixture
def renders(served: tuple[Starlette, httpx.AsyncClient]) -> Callable[[], int]:
    app = served[0]
    return lambda: int(app.state.cards.renderer.renders)


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


async def fonts_used(page: Page, selector: str) -> set[str]:
    """The font families Chromium actually drew the first ``selector`` node with."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    root = await cdp.send("DOM.getDocument")
    node = await cdp.send(
        "DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector}
    )
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    await cdp.detach()
    return {f["familyName"] for f in fonts["fonts"]}
