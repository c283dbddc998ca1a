"""Never a broken share: a card whose asset fails is served without it, for a short while
and never stored, and the real card is cached once the asset loads.

On the fake renderer, with a loopback origin that fails and then recovers; both kinds of
asset: an image parameter (fetched before the render) and a request of the card's page.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ogproxy.delivery import IMMUTABLE
from ogproxy.rendering import MAX_PAGE_REQUESTS
from ogproxy.service import Service
from tests.support.assethost import AssetHost, Reply, asset_host
from tests.support.cards import make_settings, png_image, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio

SHORT = "public, max-age=60"  # what a degraded card may be kept for, by anyone


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(out, "PNG")
    return out.getvalue()


# How an origin fails: an HTTP error, an origin down (5xx: no stale copy to stand in),
# too slow for the 0.3 s an asset gets here.
FAILURES = {
    "404": Reply(b"gone", "text/plain", 404),
    "503": Reply(b"down", "text/plain", 503),
    "slow": Reply(png_bytes(), "image/png", delay=1.0),
}


@dataclass
class Flaky:
    """An app on the fake renderer that may load assets from one loopback origin."""

    service: Service
    client: httpx.AsyncClient
    renderer: FakeRenderer
    host: AssetHost

    def fails(self, path: str, failure: str) -> str:
        self.host.routes[path] = FAILURES[failure]
        return self.host.url(path)

    def recovers(self, path: str) -> None:
        self.host.routes[path] = Reply(png_bytes(), "image/png")

    async def metric(self, sample: str) -> float:
        for line in (await self.client.get("/metrics")).text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0

    def stored(self) -> int:
        """Cards in the memory tier, the disk tier and the fast path's map."""
        disk = self.service.store.disk.cache
        assert disk is not None
        on_disk = [k for k in disk.iterkeys() if not str(k).startswith("ogproxy-lock:")]
        return len(self.service.store.memory) + len(on_disk) + len(self.service.known)


async def flaky_app(tmp_path: Path, **settings: object) -> AsyncIterator[Flaky]:
    with asset_host() as host:
        made = make_settings(
            tmp_path / "cache", asset_origins=(host.origin,), asset_timeout=0.3, **settings
        )
        renderer = FakeRenderer()
        async with running(made, renderer) as (service, client):
            yield Flaky(service, client, renderer, host)


@pytest.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[Flaky]:
    """The default settings: OGPROXY_ASSET_FAILURE=degrade."""
    async for app in flaky_app(tmp_path):
        yield app


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Flaky]:
    async for app in flaky_app(tmp_path, asset_failure="fail"):
        yield app


def assert_degraded(response: httpx.Response) -> None:
    """200, a card, kept 60 s at most, with nothing that could pass for the real card's
    (no ETag: a revalidation must never extend it) and nothing immutable."""
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == "DEGRADED"
    assert response.headers["cache-control"] == SHORT
    assert "immutable" not in str(response.headers.raw).lower()
    assert "etag" not in response.headers and "cdn-cache-control" not in response.headers
    assert response.headers["content-type"] == "image/png"
    if response.request.method == "GET":
        assert png_image(response.content).size == (1200, 630)


async def assert_real(flaky: Flaky, url: str) -> httpx.Response:
    """The real card: rendered once, immutable, then a hit (by the fast path)."""
    known = len(flaky.service.known)
    real = await flaky.client.get(url)
    assert real.status_code == 200, real.text
    assert real.headers["x-cache"] == "MISS" and real.headers["cache-control"] == IMMUTABLE
    assert real.headers["etag"]
    hit = await flaky.client.get(url)
    assert hit.headers["x-cache"] == "HIT" and hit.content == real.content
    assert len(flaky.service.known) == known + 1  # the fast path knows it now
    return real


@pytest.mark.parametrize("failure", FAILURES)
async def test_a_page_asset_that_fails_degrades_the_card_until_it_loads(
    flaky: Flaky, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogproxy")
    logo = flaky.fails("/logo.png", failure)
    flaky.renderer.page_requests = [logo]
    url = signed({"html": f'<img src="{logo}">'})
    for attempt in (1, 2):  # nothing holds it: each request tries the asset again
        degraded = await flaky.client.get(url)
        assert_degraded(degraded)
        assert flaky.host.hits.count("/logo.png") == attempt
        assert flaky.stored() == 0
    assert flaky.renderer.renders == 2
    assert await flaky.metric("ogproxy_degraded_cards_total") == 2
    assert any(logo in r.getMessage() for r in caplog.records), "the asset's URL is logged"

    flaky.recovers("/logo.png")
    real = await assert_real(flaky, url)
    assert real.content != degraded.content  # rendered with the asset this time
    assert flaky.renderer.renders == 3 and flaky.host.hits.count("/logo.png") == 3
    assert await flaky.metric("ogproxy_degraded_cards_total") == 2


@pytest.mark.parametrize("failure", FAILURES)
async def test_an_image_parameter_that_fails_degrades_the_card_until_it_loads(
    flaky: Flaky, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogproxy")
    avatar = flaky.fails("/avatar.png", failure)
    url = signed({"title": "A post", "author": "Ann", "avatar": avatar})
    degraded = await flaky.client.get(url)
    assert_degraded(degraded)
    assert "data:image" not in flaky.renderer.documents[-1][0].html
    assert flaky.stored() == 0
    assert await flaky.metric("ogproxy_degraded_cards_total") == 1
    assert any(avatar in r.getMessage() for r in caplog.records), "the asset's URL is logged"
    # Exactly the card without the image.
    without = await flaky.client.get(signed({"title": "A post", "author": "Ann"}))
    assert without.content == degraded.content

    flaky.recovers("/avatar.png")
    real = await assert_real(flaky, url)
    assert "data:image/png;base64," in flaky.renderer.documents[-1][0].html
    assert real.content != degraded.content


async def test_requests_that_arrive_together_share_one_degraded_render_and_keep_none(
    flaky: Flaky,
) -> None:
    logo = flaky.fails("/logo.png", "404")
    flaky.renderer.page_requests = [logo]
    flaky.renderer.delay = 0.3
    url = signed({"title": "Together"})
    responses = await asyncio.gather(*(flaky.client.get(url) for _ in range(3)))
    for response in responses:
        assert_degraded(response)  # the waiters too: never a WAIT that passes for a card
    assert flaky.renderer.renders == 1
    assert_degraded(await flaky.client.get(url))  # the flight is over: rendered again
    assert flaky.renderer.renders == 2 and flaky.stored() == 0


async def test_conditional_range_and_head_requests_never_keep_a_degraded_card(
    flaky: Flaky,
) -> None:
    flaky.renderer.page_requests = [flaky.fails("/logo.png", "503")]
    url = signed({"title": "Conditional"})
    full = await flaky.client.get(url)
    assert_degraded(full)
    # No current representation to match `*`, and no part of one that may change.
    assert_degraded(await flaky.client.get(url, headers={"If-None-Match": "*"}))
    ranged = await flaky.client.get(url, headers={"Range": "bytes=0-9"})
    assert_degraded(ranged)
    assert ranged.content == full.content and "accept-ranges" not in ranged.headers
    head = await flaky.client.head(url)
    assert_degraded(head)
    assert head.content == b"" and head.headers["content-length"] == str(len(full.content))
    assert flaky.stored() == 0


async def test_an_asset_the_settings_refuse_degrades_a_page_but_is_a_400_as_a_parameter(
    flaky: Flaky,
) -> None:
    """A page's request for an origin that is not allowed is an asset that failed; an
    image parameter from one is bad input, as before (the signer can check it)."""
    elsewhere = "http://127.0.0.1:9/logo.png"
    flaky.renderer.page_requests = [elsewhere]
    assert_degraded(await flaky.client.get(signed({"html": f'<img src="{elsewhere}">'})))
    flaky.renderer.page_requests = []
    refused = await flaky.client.get(signed({"title": "t", "avatar": elsewhere}))
    assert refused.status_code == 400 and refused.json()["param"] == "avatar"


async def test_strict_answers_the_failure_and_keeps_nothing(strict: Flaky) -> None:
    """OGPROXY_ASSET_FAILURE=fail: the 502/504 naming the asset, never cached."""
    avatar = strict.fails("/avatar.png", "404")
    response = await strict.client.get(signed({"title": "Strict", "avatar": avatar}))
    assert response.status_code == 502 and response.json()["param"] == "avatar"
    assert avatar in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"
    strict.renderer.page_requests = [strict.fails("/logo.png", "slow")]
    response = await strict.client.get(signed({"title": "Strict page"}))
    assert response.status_code == 504 and "/logo.png" in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"
    assert strict.stored() == 0
    assert await strict.metric("ogproxy_degraded_cards_total") == 0


async def test_a_page_that_floods_its_requests_is_the_cards_fault_degraded_or_not(
    flaky: Flaky,
) -> None:
    """Past MAX_PAGE_REQUESTS a page is not degraded but refused (422), and kept nowhere."""
    flaky.renderer.page_requests = [f"http://127.0.0.1:9/{i}.png" for i in range(250)]
    for _ in range(2):
        flooded = await flaky.client.get(signed({"html": "<h1>Flood</h1>"}))
        assert flooded.status_code == 422, flooded.text
        assert f"more than {MAX_PAGE_REQUESTS} requests" in flooded.json()["error"]
        assert flooded.headers["cache-control"] == "no-store"
    assert flaky.renderer.renders == 0
