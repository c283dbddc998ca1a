"""Output is bounded: pixels and bytes per image, memory per render."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ogproxy import cards
from ogproxy.delivery import IMMUTABLE
from ogproxy.params import MAX_OUTPUT_BYTES, MAX_OUTPUT_PIXELS
from ogproxy.procfs import descendants
from tests.support.cards import make_settings, png_image, running, signed
from tests.support.fake import FakeRenderer
from tests.support.processes import rss_bytes

pytestmark = pytest.mark.anyio

# Each allocates until something stops it: the JS heap, typed arrays (outside the JS
# heap) and the DOM (Blink's heap).
BOMBS = {
    "js heap": "<script>const k = []; for (;;) k.push(new Array(1e6).fill(Math.random()))</script>",
    "typed arrays": "<script>const k = []; for (;;) k.push(new Uint8Array(64 << 20).fill(1))"
    "</script>",
    "dom": "<body><script>for (;;) document.body.appendChild(document.createElement('div'))"
    ".textContent = 'x'.repeat(1000);</script>",
}


async def test_output_pixels_are_capped(
    client: httpx.AsyncClient, renders: Callable[[], int]
) -> None:
    before = renders()
    response = await client.get(
        signed({"title": "Huge", "width": 2400, "height": 2400, "scale": 2})
    )
    assert response.status_code == 400 and response.json()["param"] == "scale"
    assert f"{MAX_OUTPUT_PIXELS:,}" in response.json()["error"]
    assert renders() == before
    fits = await client.get(signed({"title": "Retina", "width": 1200, "height": 630, "scale": 2}))
    assert fits.status_code == 200


async def test_a_lossless_png_over_5_mb_is_served_with_a_palette(tmp_path: Path) -> None:
    """5 MB is the smallest platform limit (X, LinkedIn): a lossless PNG over it is
    encoded again with a 256-colour palette, which fits, and stored as the card."""
    renderer = FakeRenderer(noise=True, colours=256)
    async with running(make_settings(tmp_path), renderer) as (_, client):
        url = signed({"title": "Big", "width": 1600, "height": 1600})  # ~5.9 MB lossless
        response = await client.get(url)
        assert response.status_code == 200, response.text
        assert len(response.content) <= MAX_OUTPUT_BYTES == 5_000_000
        assert png_image(response.content).mode == "P"  # the palette encoding
        assert response.headers["cache-control"] == IMMUTABLE
        again = await client.get(url)
        assert again.headers["x-cache"] == "HIT" and again.content == response.content
        assert renderer.renders == 1


@pytest.mark.parametrize(
    ("card", "colours", "advice"),
    [
        ({"width": 600, "height": 600}, 256, "even with a 256-colour palette"),
        ({"width": 600, "height": 600, "palette": 1}, 256, "JPEG or WebP"),
        ({"width": 600, "height": 600, "quality": 90}, 0, "a lower quality"),
    ],
    ids=["png", "palette", "jpeg"],
)
async def test_a_card_that_does_not_fit_in_5_mb_is_refused_and_never_stored(
    tmp_path: Path,
    card: dict[str, int],
    colours: int,
    advice: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rule at a tenth of the size (the 5 MB cards above cost seconds of encoding): a
    # 600x600 card of noise is over 200 kB in every encoding, even with a palette.
    monkeypatch.setattr(cards, "MAX_OUTPUT_BYTES", 200_000)
    path = "/og.jpeg" if "quality" in card else "/og.png"
    renderer = FakeRenderer(noise=True, colours=colours)
    async with running(make_settings(tmp_path), renderer) as (app, client):
        url = signed({"title": "Too big", **card}, base=f"http://ogproxy.test{path}")
        response = await client.get(url)
        assert response.status_code == 422, (response.status_code, len(response.content))
        error = response.json()["error"]
        assert "over the 5 MB limit" in error and advice in error, error
        assert response.headers["cache-control"] == "no-store"
        disk = app.store.disk.cache
        assert disk is not None and list(disk.iterkeys()) == []  # never stored
        assert len(app.store.memory) == 0


def _rss_of_descendants() -> int:
    return rss_bytes(descendants(os.getpid()))


@pytest.mark.browser
async def test_allocation_bombs_hit_a_memory_ceiling(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, render_timeout=10)) as (service, client):
        # The largest card allowed renders within the ceiling.
        big = signed(
            {"title": "Big", "template": "gradient", "width": 2400, "height": 1700, "scale": 2}
        )
        assert (await client.get(big, timeout=60)).status_code == 200
        for name, html in BOMBS.items():
            baseline = _rss_of_descendants()
            peak, done = [baseline], threading.Event()

            def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
                while not done.is_set():
                    peak.append(_rss_of_descendants())
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                response = await client.get(signed({"html": html}), timeout=60)
            finally:
                done.set()
                sampler.join()
            # A script that died of a failed allocation, or a renderer that died, is an
            # error (a blank 200 was stored for a year): never a card, never a 500, never GBs.
            assert response.status_code in (422, 503, 504), (name, response.text[:200])
            assert response.headers["cache-control"] == "no-store"
            grown = (max(peak) - baseline) / 2**20
            assert grown < 1200, f"{name}: browser processes grew {grown:.0f} MiB in one render"
        ok = await client.get(signed({"title": "After the bombs"}))
        assert ok.status_code == 200
        assert service.store.disk.usage()["entries"] == 2  # the two cards, none of the bombs
