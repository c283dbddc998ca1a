"""The Chromium renderer itself: page reuse, recycling and timeouts, with a real browser."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ogproxy import procfs
from ogproxy import renderer as renderer_module
from ogproxy.config import TEMPLATES_DIR
from ogproxy.errors import RenderTimeout
from ogproxy.params import CardParams, Output
from ogproxy.renderer import ChromiumRenderer
from ogproxy.templates import TemplateSet
from tests.support.cards import png_image
from tests.support.processes import chromium

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
    import os

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
