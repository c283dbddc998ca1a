"""Output is bounded: pixels and bytes per image, memory per render."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ogproxy.params import MAX_OUTPUT_BYTES, MAX_OUTPUT_PIXELS
from ogproxy.procfs import descendants
from tests.support.cards import make_settings, running, signed
from tests.support.fake import FakeRenderer
from tests.support.processes import rss_bytes

pytestmark = pytest.mark.anyio

# Fills the whole viewport with random pixels: incompressible, the largest PNG a size
# can give (2000x2000: ~12 MB).
NOISE = """<body style="margin:0"><canvas id="c"></canvas><script>
const c = document.getElementById('c'); c.width = innerWidth; c.height = innerHeight;
const ctx = c.getContext('2d'); const img = ctx.createImageData(c.width, c.height);
for (let i = 0; i < img.data.length; i++) img.data[i] = i % 4 == 3 ? 255 : Math.random() * 256;
ctx.putImageData(img, 0, 0);
</script>"""

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


async def test_an_image_over_the_byte_cap_is_refused_and_never_stored(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path), FakeRenderer(noise=True)) as (app, client):
        url = signed({"html": NOISE, "width": 2000, "height": 2000})  # ~12 MB of PNG
        for _ in range(2):
            response = await client.get(url)
            assert response.status_code == 422, (response.status_code, len(response.content))
            assert f"{MAX_OUTPUT_BYTES // 2**20} MiB" in response.json()["error"]
            assert response.headers["cache-control"] == "no-store"
        assert app.renderer.renders == 2  # refused each time, never stored
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
