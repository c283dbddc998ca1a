"""Faults injected into a running app: it keeps answering.

Chromium where the fault is the browser's (killed, hung); the fake renderer elsewhere.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import diskcache
import pytest

from ogproxy.config import TEMPLATES_DIR
from tests.support.cards import make_settings, png_image, running, signed
from tests.support.fake import FakeRenderer, Fault
from tests.support.processes import browsers, zombies

pytestmark = pytest.mark.anyio

# A card that keeps its page busy for a while, so a fault can land mid-render.
SLOW = "<h1>{{ title }}</h1><script>const t = Date.now(); while (Date.now() - t < 1500) {}</script>"


def templates_with_slow(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder)
    (folder / "slow.html").write_text(SLOW)
    return folder


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.mark.browser
async def test_browser_killed_between_renders_is_relaunched(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, pages=2, browsers=1)) as (app, client):
        assert (await client.get(signed({"title": "Before the crash"}))).status_code == 200
        [pid] = browsers(os.getpid())
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: not app.renderer.ready)
        response = await client.get(signed({"title": "After the crash"}))
        assert response.status_code == 200
        assert png_image(response.content).size == (1200, 630)
        assert app.renderer.restarts == 1
        assert browsers(os.getpid()) and pid not in browsers(os.getpid())
        # A killed process is reaped by its parent in its own time on a loaded machine;
        # a zombie that outlives the wait is a leak.
        await wait_for(lambda: not zombies(os.getpid()))


@pytest.mark.browser
async def test_browser_killed_mid_render_gets_retry_or_503_never_a_hang(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, pages=1, browsers=1, templates_dir=templates_with_slow(tmp_path)
    )
    async with running(settings) as (app, client):
        request = asyncio.create_task(
            client.get(signed({"title": "Mid-render", "template": "slow"}))
        )
        # A custom template renders in the browser for untrusted cards, launched at its
        # first card: wait for it, then kill it inside the 1.5 s script.
        for _ in range(100):
            if len(browsers(os.getpid())) == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        pid = max(browsers(os.getpid()))
        os.kill(pid, signal.SIGKILL)
        response = await asyncio.wait_for(request, 20)
        assert response.status_code in (200, 503)
        if response.status_code == 503:
            assert (
                response.headers["retry-after"] and response.headers["cache-control"] == "no-store"
            )
        assert app.renderer.restarts >= 1
        after = await client.get(signed({"title": "Next one"}))
        assert after.status_code == 200
        # A killed process is reaped by its parent in its own time on a loaded machine;
        # a zombie that outlives the wait is a leak.
        await wait_for(lambda: not zombies(os.getpid()))


@pytest.mark.browser
async def test_hung_render_is_cut_off_with_504(tmp_path: Path) -> None:
    folder = templates_with_slow(tmp_path)
    (folder / "hang.html").write_text("<h1>{{ title }}</h1><script>for (;;) {}</script>")
    settings = make_settings(tmp_path, pages=1, render_timeout=1.0, templates_dir=folder)
    async with running(settings) as (_, client):
        started = time.monotonic()
        response = await client.get(signed({"title": "Never settles", "template": "hang"}))
        assert response.status_code == 504
        assert response.headers["cache-control"] == "no-store"
        assert time.monotonic() - started < 5
        assert (await client.get(signed({"title": "Clean page after"}))).status_code == 200
        # Not cached: asking again renders (and times out) again.
        again = await client.get(signed({"title": "Never settles", "template": "hang"}))
        assert again.status_code == 504


async def test_overload_gets_503_at_once_while_hits_keep_flowing(tmp_path: Path) -> None:
    renderer = FakeRenderer(pages=1, queue=1)
    async with running(make_settings(tmp_path), renderer) as (app, client):
        hit_url = signed({"title": "Warm"})
        assert (await client.get(hit_url)).status_code == 200
        renderer.delay = 0.3  # the next renders keep their page busy
        busy = asyncio.create_task(client.get(signed({"title": "busy"})))
        await wait_for(lambda: app.renderer.waiting == 0 and not busy.done(), 5)
        queued = asyncio.create_task(client.get(signed({"title": "queued"})))
        await wait_for(lambda: app.renderer.waiting == 1, 5)
        refused = await client.get(signed({"title": "refused"}))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["cache-control"] == "no-store"
        hit = await client.get(hit_url)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
        assert not busy.done(), "the hit must not have waited for the render"
        assert (await busy).status_code == 200 and (await queued).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status"),
    [("invalid", 422), ("crash", 503)],  # the page died of the card's doing, or of ours
)
async def test_a_render_that_died_is_never_stored(
    tmp_path: Path, fault: Fault, status: int
) -> None:
    renderer = FakeRenderer(faults=[fault])
    async with running(make_settings(tmp_path), renderer) as (app, client):
        url = signed({"title": "Died mid-render"})
        died = await client.get(url)
        assert died.status_code == status and died.headers["cache-control"] == "no-store"
        assert not died.content.startswith(b"\x89PNG")
        assert len(app.store.memory) == 0 and not app.store.disk.usage()["entries"]
        again = await client.get(url)  # nothing of it was kept: rendered afresh
        assert again.status_code == 200 and again.headers["x-cache"] == "MISS"
        assert renderer.renders == 1


async def test_full_disk_still_serves_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(make_settings(tmp_path), FakeRenderer()) as (app, client):

        def full(*args: object, **kwargs: object) -> NoReturn:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(app.store.disk.cache, "set", full)
        monkeypatch.setattr(app.store.disk.cache, "add", full)
        response = await client.get(signed({"title": "Disk is full"}))
        assert response.status_code == 200 and png_image(response.content).size == (1200, 630)
        assert app.store.disk.errors >= 1


async def test_corrupted_entry_is_rendered_again(tmp_path: Path) -> None:
    url = signed({"title": "Corrupt me", "template": "minimal"})
    async with running(make_settings(tmp_path), FakeRenderer()) as (_, client):
        good = await client.get(url)
    with diskcache.Cache(str(tmp_path)) as raw:  # truncate the stored entry in place
        [key] = [k for k in raw if not str(k).startswith("ogproxy-lock:")]
        raw[key] = raw[key][: len(raw[key]) // 2]
    async with running(make_settings(tmp_path), FakeRenderer()) as (app, client):
        again = await client.get(url)
        assert again.status_code == 200 and again.headers["x-cache"] == "MISS"
        assert png_image(again.content).size == (1200, 630)
        assert len(again.content) == len(good.content)
        assert app.store.disk.stats.rejected == 1
