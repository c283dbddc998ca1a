"""The Chromium renderer itself: page reuse, recycling and timeouts, with a real browser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import CDPSession

from ogproxy import procfs
from ogproxy import renderer as renderer_module
from ogproxy.config import TEMPLATES_DIR
from ogproxy.errors import BrowserUnavailable, InvalidDocument, RenderTimeout
from ogproxy.params import CardParams, Output
from ogproxy.priority import RENDER_NICE, UNTRUSTED_NICE
from ogproxy.renderer import ChromiumRenderer
from ogproxy.templates import Document, TemplateSet
from tests.support.cards import chromium_renderer, png_image
from tests.support.processes import browsers, chromium, cpu_seconds

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


def card(title: str, template: str = "default") -> CardParams:
    return CardParams(template, title, "", "#2563eb")


async def test_pages_are_recycled_and_keep_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderer_module, "RECYCLE_AFTER", 2)
    templates = TemplateSet(TEMPLATES_DIR)
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10)
    await renderer.start()
    try:
        pages = set()
        for i in range(5):
            # The one tab, as the next render will get it (asyncio.Queue keeps a deque).
            tab = renderer._pool._queue[0]  # type: ignore[attr-defined]
            pages.add(id(tab.page))
            doc = templates.render(card(f"Card {i}"), width=1200, height=630)
            png = await renderer.render(doc, Output())
            assert png_image(png).size == (1200, 630)
        assert len(pages) == 3  # renders 1-2, 3-4, 5
        assert renderer.renders == 5
    finally:
        await renderer.stop()


async def test_a_hanging_template_times_out_and_the_next_render_works(tmp_path: Path) -> None:
    for path in TEMPLATES_DIR.glob("*.html"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "hang.html").write_text("<h1>{{ title }}</h1><script>for (;;) {}</script>")
    templates = TemplateSet(tmp_path)
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=1.5)
    await renderer.start()
    try:
        started = time.monotonic()
        hang = templates.render(card("x", "hang"), width=1200, height=630)
        with pytest.raises(RenderTimeout):
            await renderer.render(hang, Output())
        assert time.monotonic() - started < 5
        doc = templates.render(card("After the hang"), width=1200, height=630)
        assert png_image(await renderer.render(doc, Output())).size == (1200, 630)
    finally:
        await renderer.stop()


async def test_render_work_runs_at_lower_priority() -> None:

    from ogproxy.priority import RENDER_NICE

    before = set(procfs.descendants(os.getpid()))  # other tests' servers are not ours to check
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10)
    await renderer.start()
    try:
        doc = TemplateSet(TEMPLATES_DIR).render(card("Nice"), width=1200, height=630)
        await renderer.render(doc, Output())  # renderer processes exist by now
        niceness = {}
        for pid in set(procfs.descendants(os.getpid())) - before:
            for tid in procfs.thread_ids(pid):
                name = f"{procfs.cmdline(pid)[:90]} [{procfs.thread_name(pid, tid)}]"
                niceness[name] = os.getpriority(os.PRIO_PROCESS, tid)
        assert niceness
        assert {name: n for name, n in niceness.items() if n != RENDER_NICE} == {}
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the event loop keeps its priority
    finally:
        await renderer.stop()


ENCODER_THREADS = """
import asyncio, json, os
from ogproxy import procfs
from ogproxy.config import TEMPLATES_DIR
from ogproxy.encoder import linear_gradient
from ogproxy.params import CardParams, Output
from ogproxy.priority import RENDER_NICE
from ogproxy.renderer import ChromiumRenderer
from ogproxy.templates import TemplateSet

linear_gradient(1200, 630, "#123456", "#654321")  # libvips starts its workers from here

async def main():
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10)
    await renderer.start()
    try:
        doc = TemplateSet(TEMPLATES_DIR).render(
            CardParams("default", "Workers", "", "#2563eb"), width=1200, height=630
        )
        await renderer.render(doc, Output())
    finally:
        await renderer.stop()
    nice = {
        tid: os.getpriority(os.PRIO_PROCESS, tid)
        for tid in procfs.thread_ids()
        if procfs.thread_name("self", tid).startswith("libvips")
    }
    print(json.dumps({"levels": sorted(set(nice.values())), "want": RENDER_NICE}))

asyncio.run(main())
"""


def test_library_encoder_threads_run_at_lower_priority() -> None:
    # libvips keeps a pool of worker threads, started by whichever thread first used it
    # (here the main thread, at normal priority); the encoding they do is render work.
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", ENCODER_THREADS], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["levels"] == [found["want"]], out.stdout


async def test_no_secret_reaches_the_driver_or_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OGPROXY_SECRET": "secret-value-0123456789",
        "OGPROXY_API_KEYS": "api-key-value-0123456789",
        "OGPROXY_ADMIN_TOKEN": "admin-token-value-0123456789",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value-0123456789",
        # Secrets under names of their own: only an allowlist keeps them out.
        "DATABASE_URL": "postgres://app:db-password-0123456789@db/app",
        "SENTRY_DSN": "https://sentry-key-0123456789@sentry.example/1",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10)
    await renderer.start()
    try:
        templates = TemplateSet(TEMPLATES_DIR)
        await renderer.render(templates.render(card("env"), width=1200, height=630), Output())
        children = procfs.descendants(os.getpid())
        assert any("node" in procfs.cmdline(pid) for pid in children), "no Playwright driver found"
        assert chromium(os.getpid()), "no Chromium found"
        for pid in children:
            leaked = [n for n, v in procfs.environ(pid).items() if v in secrets.values()]
            assert leaked == [], f"{procfs.cmdline(pid)[:80]} has {leaked}"
    finally:
        await renderer.stop()
    assert os.environ["OGPROXY_SECRET"] == secrets["OGPROXY_SECRET"]  # ours is untouched


# A page that dies during its render: its capture, if any, is not the card.

# Allocates until the allocation fails: the script dies of a RangeError and the page
# lives on, blank (it was answered as a blank 200 card and stored for a year).
TYPED_ARRAY_BOMB = (
    "<script>const k = []; for (;;) k.push(new Uint8Array(64 << 20).fill(1))</script>"
)
BUSY = "<p>busy</p><script>const t = Date.now(); while (Date.now() - t < 3000) {}</script>"


def untrusted(html: str) -> Document:
    return Document(html, None, {})


async def test_a_script_that_runs_out_of_memory_is_a_422_not_a_blank_card() -> None:
    async with chromium_renderer() as renderer:
        with pytest.raises(InvalidDocument) as refused:
            await renderer.render(untrusted(TYPED_ARRAY_BOMB), Output())
        assert "ran out of memory" in refused.value.public_message
        assert renderer.renders == 0
        after = await renderer.render(untrusted("<p>After the bomb</p>"), Output())
        assert png_image(after).size == (1200, 630)


async def test_a_page_killed_mid_render_is_an_error_never_a_card() -> None:
    async with chromium_renderer() as renderer:
        await renderer.render(untrusted("<p>Warm</p>"), Output())  # the untrusted browser
        untrusted_browser = max(browsers(os.getpid()))
        render = asyncio.create_task(renderer.render(untrusted(BUSY), Output()))
        await asyncio.sleep(1.0)  # inside the busy script
        pages = [
            pid
            for pid in procfs.descendants(untrusted_browser)
            if "--type=renderer" in procfs.cmdline(pid)
        ]
        assert pages and not render.done()
        # The busy one: the others are the next card's page, made while this one renders.
        os.kill(max(pages, key=lambda pid: cpu_seconds([pid])), signal.SIGKILL)
        with pytest.raises((InvalidDocument, BrowserUnavailable)):
            await render
        assert renderer.renders == 1
        after = await renderer.render(untrusted("<p>After the kill</p>"), Output())
        assert png_image(after).size == (1200, 630)


async def test_a_page_that_crashed_after_its_capture_yields_no_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crash event can arrive after the capture returned: the render is still lost."""
    capture = renderer_module._capture

    async def capture_then_crash(cdp: CDPSession) -> bytes:
        shot = await capture(cdp)
        with contextlib.suppress(Exception):  # the page's renderer dies; no answer comes
            await asyncio.wait_for(cdp.send("Page.crash"), 1)
        await asyncio.sleep(0.2)  # its crash event arrives
        return shot

    async with chromium_renderer() as renderer:
        monkeypatch.setattr(renderer_module, "_capture", capture_then_crash)
        with pytest.raises(InvalidDocument):  # an untrusted page: the card's own doing
            await renderer.render(untrusted("<p>Crashes</p>"), Output())
        built_in = TemplateSet(TEMPLATES_DIR).render(card("Crashes"), width=1200, height=630)
        with pytest.raises(BrowserUnavailable):  # a built-in card: ours (tried twice)
            await renderer.render(built_in, Output())
        assert renderer.renders == 0
        monkeypatch.undo()
        assert png_image(await renderer.render(built_in, Output())).size == (1200, 630)


async def test_untrusted_cards_have_their_own_driver_at_a_lower_priority(
    fetcher: Any,
) -> None:
    """A card that floods its page backs up its own driver's pipe, not the built-ins'
    (tests/test_request_floods.py)."""
    async with chromium_renderer() as renderer:
        await _own_driver(renderer, fetcher)


async def _own_driver(renderer: ChromiumRenderer, fetcher: Any) -> None:
    drivers = [pid for pid in procfs.children(os.getpid()) if "node" in procfs.cmdline(pid)]
    assert len(drivers) == 1
    await renderer.render(untrusted("<p>Untrusted</p>"), Output(), fetcher().card())
    now = [pid for pid in procfs.children(os.getpid()) if "node" in procfs.cmdline(pid)]
    [own] = set(now) - set(drivers)
    trusted_browser, untrusted_browser = sorted(browsers(os.getpid()))
    assert untrusted_browser in procfs.descendants(own)
    assert trusted_browser not in procfs.descendants(own)
    assert os.getpriority(os.PRIO_PROCESS, own) == UNTRUSTED_NICE
    assert os.getpriority(os.PRIO_PROCESS, untrusted_browser) == UNTRUSTED_NICE
    assert os.getpriority(os.PRIO_PROCESS, trusted_browser) == RENDER_NICE
