"""Template image parameters (avatar, logo) through the app (fake renderer): the fetch holes."""

from __future__ import annotations

import asyncio
import io
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.support.assethost import Reply, asset_host
from tests.support.cards import make_settings, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(out, "PNG")
    return out.getvalue()


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    return b"".join(packer.compress(zeros) for _ in range(size // 2**20)) + packer.flush()


async def test_a_trickling_image_gets_one_overall_deadline(tmp_path: Path) -> None:
    with asset_host() as host:
        # A byte every 0.05 s: no single read ever waits 0.5 s, the whole takes 5 s.
        host.routes["/slow.png"] = Reply(png_bytes()[:100], "image/png", trickle=0.05)
        settings = make_settings(
            tmp_path, asset_origins=(host.origin,), asset_timeout=0.5, asset_failure="fail"
        )
        async with running(settings, FakeRenderer()) as (_, client):
            started = time.monotonic()
            slow = await client.get(signed({"title": "Slow", "avatar": host.url("/slow.png")}))
            elapsed = time.monotonic() - started
    assert slow.status_code == 504 and slow.json()["param"] == "avatar", slow.text
    assert host.url("/slow.png") in slow.json()["error"]
    assert slow.headers["cache-control"] == "no-store"
    assert elapsed < 1.5, elapsed


async def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    with asset_host() as host:
        host.routes["/bomb.png"] = Reply(
            gzip_bomb(128 * 2**20), "image/png", headers={"Content-Encoding": "gzip"}
        )
        async with running(
            make_settings(tmp_path, asset_origins=(host.origin,), asset_failure="fail"),
            FakeRenderer(),
        ) as (_, client):
            tracemalloc.start()
            try:
                bomb = await client.get(signed({"title": "Bomb", "logo": host.url("/bomb.png")}))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert bomb.status_code == 502 and bomb.json()["param"] == "logo", bomb.text
    assert "larger than" in bomb.json()["error"]
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB"


async def test_images_are_fetched_before_the_render_lock_is_taken(tmp_path: Path) -> None:
    """A slow image origin must not hold the card's cross-process lock."""
    with asset_host() as host:
        host.routes["/slow.png"] = Reply(png_bytes(), "image/png", delay=0.5)
        async with running(
            make_settings(tmp_path, asset_origins=(host.origin,)), FakeRenderer()
        ) as (app, client):
            url = signed({"title": "Lock", "avatar": host.url("/slow.png")})
            request = asyncio.ensure_future(client.get(url))
            while not host.hits:
                await asyncio.sleep(0.02)
            disk = app.store.disk.cache
            assert disk is not None
            locks = [k for k in disk.iterkeys() if str(k).startswith("ogproxy-lock:")]
            response = await request
    assert locks == []
    assert response.status_code == 200
