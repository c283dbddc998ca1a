"""In-process render scenarios: ogproxy's miss path against the naive Playwright path.

Every scenario renders the same card HTML (from ogproxy's own templates) in the same
Chromium build, one after the other in one run:

- naive: a reused page with the template loaded and only the text changed, captured
  with ``page.screenshot(type="png")`` (what most Playwright OG services do);
- floor: the same page captured as JPEG through CDP (paint + capture, almost no
  encoding): nothing lossless can beat it by much;
- ogproxy: a full miss through the ASGI app (signature, params, template, render,
  libvips encode, cache write), one request at a time, and then many at once.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops
from playwright.async_api import async_playwright

from ogproxy import sign_url
from ogproxy.browser import LAUNCH_ARGS, executable_for, system_chromium
from ogproxy.config import TEMPLATES_DIR, Settings
from ogproxy.params import CardParams, Output
from ogproxy.renderer import Tab
from ogproxy.templates import TemplateSet
from tests.support.cards import running

SECRET = "bench-secret-0123456789abcdef"
HERE = Path(__file__).resolve().parent
SUBTITLE = "Marcus Chen · 8 min read"


def title(i: int) -> str:
    # Two lines on the card, an emoji, and distinct every time (no cache can help).
    return f"Shipping a self-hosted OG image service, take {i} 🚀"


def bench_templates(into: Path) -> Path:
    """The benchmark's own templates (css-gradient), used over the built-in ones, and the
    shipped gradient again as an operator's template ("untrusted": a context per card)."""
    for path in (HERE / "templates").glob("*.html"):
        shutil.copy(path, into / path.name)
    shutil.copy(TEMPLATES_DIR / "gradient.html", into / "gradient-untrusted.html")
    return into


# What a straightforward service launches with: the flags this machine needs, no tuning.
NAIVE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# The JPEG-capture floor is the soonest Chromium hands back a card: ogproxy's flags plus
# unlimited frames, which ogproxy itself no longer runs with (they cost it ~10 ms of CPU a
# card), so that changing ogproxy's flags never moves the reference.
FLOOR_ARGS = [*LAUNCH_ARGS, "--no-sandbox", "--disable-frame-rate-limit"]


async def launch(pw: Any, *, naive: bool) -> Any:
    """The Chromium binary ogproxy uses, with the floor's flags or the naive ones."""
    if not naive:
        return await pw.chromium.launch(executable_path=executable_for(pw), args=FLOOR_ARGS)
    try:
        return await pw.chromium.launch(args=NAIVE_ARGS)
    except Exception:  # no Playwright build here: the system one, as ogproxy does
        return await pw.chromium.launch(executable_path=system_chromium(), args=NAIVE_ARGS)


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 1)


async def _timed(n: int, fn: Callable[[int], Awaitable[bytes]]) -> tuple[list[float], list[int]]:
    times, sizes = [], []
    for i in range(n):
        started = time.perf_counter()
        out = await fn(i)
        times.append((time.perf_counter() - started) * 1000)
        sizes.append(len(out))
    return times, sizes


def image_error(reference: bytes, other: bytes) -> dict[str, float]:
    a = Image.open(io.BytesIO(reference)).convert("RGB")
    b = Image.open(io.BytesIO(other)).convert("RGB")
    diff = ImageChops.difference(a, b)
    total = sum(sum(i * n for i, n in enumerate(diff.getchannel(c).histogram())) for c in range(3))
    return {
        "mean_channel_error": round(total / (a.width * a.height * 3), 3),
        "max_channel_error": max(
            int(band[1]) for band in diff.getextrema() if isinstance(band, tuple)
        ),
    }


async def browser_paths(templates: TemplateSet, template: str, n: int) -> dict[str, Any]:
    """naive screenshot and JPEG floor on one reused page, text changed in place; the
    JPEG floor of a fresh context per card."""
    accent = templates.specs[template].accent_color

    def doc(i: int) -> Any:
        params = CardParams(template, title(i), SUBTITLE, accent)
        return templates.render(params, width=1200, height=630)

    async with async_playwright() as pw:
        tabs = []
        for untuned in (True, False):
            browser = await launch(pw, naive=untuned)
            context = await browser.new_context(viewport={"width": 1200, "height": 630})
            page = await context.new_page()
            tabs.append(Tab(page, await context.new_cdp_session(page)))
        naive_tab, tuned_tab = tabs

        async def naive(i: int) -> bytes:
            await naive_tab.load(doc(i), Output())
            return await naive_tab.page.screenshot(type="png")

        async def floor(i: int) -> bytes:
            await tuned_tab.load(doc(i), Output())
            shot = await tuned_tab.cdp.send(
                "Page.captureScreenshot", {"format": "jpeg", "quality": 80}
            )
            return str(shot["data"]).encode()

        async def made() -> Any:
            context = await tuned_tab.page.context.browser.new_context(  # type: ignore[union-attr]
                viewport={"width": 1200, "height": 630}
            )
            return context, await context.new_page()

        async def fresh(i: int, context: Any, page: Any) -> bytes:
            # Isolation's floor: the card in a context of its own, closed after its JPEG
            # capture; no policy, no encode.
            await page.set_content(doc(i).html, wait_until="load")
            cdp = await context.new_cdp_session(page)
            shot = await cdp.send("Page.captureScreenshot", {"format": "jpeg", "quality": 80})
            await context.close()
            return str(shot["data"]).encode()

        spare = asyncio.ensure_future(made())

        async def fresh_floor(i: int) -> bytes:
            # One at a time, each in a context made before it was needed (ogproxy's spare).
            nonlocal spare
            ready, spare = spare, asyncio.ensure_future(made())
            return await fresh(i, *await ready)

        await _timed(3, naive)
        naive_ms, naive_bytes = await _timed(n, naive)
        await _timed(3, floor)
        floor_ms, _ = await _timed(n, floor)
        await _timed(3, fresh_floor)
        fresh_ms, _ = await _timed(n, fresh_floor)
        await (await spare)[0].close()

        # As many at once as ogproxy has pages on two cores: each makes its own context.
        limit = asyncio.Semaphore(4)

        async def bounded(i: int) -> None:
            async with limit:
                await fresh(i, *await made())

        started = time.perf_counter()
        await asyncio.gather(*(bounded(10_000 + i) for i in range(n)))
        fresh_rate = n / (time.perf_counter() - started)
        await naive_tab.load(doc(0), Output())
        reference = await naive_tab.page.screenshot(type="png")
        for tab in tabs:
            await tab.page.context.browser.close()  # type: ignore[union-attr]
    return {
        "naive_ms_p50": p50(naive_ms),
        "naive_bytes_p50": int(statistics.median(naive_bytes)),
        "floor_ms_p50": p50(floor_ms),
        "fresh_floor_ms_p50": p50(fresh_ms),
        "fresh_floor_per_s": round(fresh_rate, 1),
        "reference_png": reference,
    }


async def naive_throughput(templates: TemplateSet, template: str, n: int, pages: int) -> float:
    """Distinct misses per second with the naive path: one browser, several pages."""
    accent = templates.specs[template].accent_color
    async with async_playwright() as pw:
        browser = await launch(pw, naive=True)
        context = await browser.new_context(viewport={"width": 1200, "height": 630})
        tabs = []
        for _ in range(pages):
            page = await context.new_page()
            tabs.append(Tab(page, await context.new_cdp_session(page)))
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n + pages):
            queue.put_nowait(i)

        async def worker(tab: Tab) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                params = CardParams(template, title(1000 + i), SUBTITLE, accent)
                await tab.load(templates.render(params, width=1200, height=630), Output())
                await tab.page.screenshot(type="png")

        # warm each page once, then time n renders
        await asyncio.gather(*(worker_once(tab, templates, template, accent) for tab in tabs))
        started = time.perf_counter()
        await asyncio.gather(*(worker(tab) for tab in tabs))
        elapsed = time.perf_counter() - started
        await browser.close()
    return round((n + pages) / elapsed, 1)


async def worker_once(tab: Tab, templates: TemplateSet, template: str, accent: str) -> None:
    params = CardParams(template, title(-1), SUBTITLE, accent)
    await tab.load(templates.render(params, width=1200, height=630), Output())
    await tab.page.screenshot(type="png")


async def ogproxy_paths(
    templates_dir: Path, template: str, n: int, burst: int, trusted: bool = True
) -> dict[str, Any]:
    """Full misses through the ASGI app: one at a time, then ``burst`` distinct at once.

    ``trusted`` puts the benchmark's own templates in the page pool like the built-in ones,
    so css-gradient measures the same path as the shipped card.
    """
    with tempfile.TemporaryDirectory() as cache:
        settings = Settings(
            secrets=(SECRET,),
            cache_dir=Path(cache),
            templates_dir=templates_dir,
            trusted_templates=trusted,
        )
        async with running(settings) as (_, client):

            def url(i: int, **extra: str) -> str:
                params = {"title": title(i), "subtitle": SUBTITLE, "template": template}
                return sign_url("http://bench/og.png", SECRET, {**params, **extra})

            async def get(u: str) -> bytes:
                response = await client.get(u)
                assert response.status_code == 200, response.text
                assert response.headers["x-cache"] == "MISS"
                return response.content

            await _timed(4, lambda i: get(url(10_000 + i)))
            miss_ms, miss_bytes = await _timed(n, lambda i: get(url(i)))
            lossless = await get(url(50_000))
            palette = await get(url(50_000, palette="1"))
            # Many distinct misses, 16 in flight at a time (a crawler burst that stays
            # under the server's queue bound of 64; past it ogproxy answers 503).
            limit = asyncio.Semaphore(16)

            async def bounded(i: int) -> bytes:
                async with limit:
                    return await get(url(20_000 + i))

            started = time.perf_counter()
            await asyncio.gather(*(bounded(i) for i in range(burst)))
            throughput = burst / (time.perf_counter() - started)
            first = await client.get(url(0))
    return {
        "miss_ms_p50": p50(miss_ms),
        "miss_ms_p90": round(sorted(miss_ms)[int(0.9 * (len(miss_ms) - 1))], 1),
        "png_bytes_p50": int(statistics.median(miss_bytes)),
        "palette_bytes": len(palette),
        "palette_vs_lossless": image_error(lossless, palette),
        "throughput_per_s": round(throughput, 1),
        "sample_png": first.content,
    }


async def run(quick: bool, out_dir: Path) -> dict[str, Any]:
    n = 15 if quick else 60
    burst = 40 if quick else 160
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        templates_dir = bench_templates(Path(tmp))
        templates = TemplateSet(templates_dir, TEMPLATES_DIR)
        for template in ("gradient", "css-gradient"):
            row = await browser_paths(templates, template, n)
            row["naive_throughput_per_s"] = await naive_throughput(
                templates, template, burst // 2, 4
            )
            row.update(await ogproxy_paths(templates_dir, template, n, burst))
            (out_dir / f"{template}-naive.png").write_bytes(row.pop("reference_png"))
            (out_dir / f"{template}-ogproxy.png").write_bytes(row.pop("sample_png"))
            results[template] = row
        # The same shipped card as an operator's template: each miss in a new context.
        untrusted = await ogproxy_paths(templates_dir, "gradient-untrusted", n, burst, False)
        untrusted.pop("sample_png")
        results["gradient-untrusted"] = untrusted
    return results


if __name__ == "__main__":
    import json
    import sys

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    print(json.dumps(asyncio.run(run("--full" not in sys.argv, out)), indent=2))
