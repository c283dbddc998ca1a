"""One card can never change another: a hostile document, then innocent cards.

Each hostile card below defaced every later card rendered in the same tab when tabs were
reused across documents (set_content keeps the same window). The proof of isolation is a
comparison: after the hostile card, 10 cards of each built-in template must be exactly the
bytes that a fresh server gives for the same 10 cards.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ogproxy.renderer import ChromiumRenderer
from tests.support.cards import SECRET, make_settings, running, signed
from tests.support.processes import chromium, cpu_seconds, rss_bytes
from tests.support.servers import serve

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

API_KEY = "api-key-0123456789"

_DEFACE = (
    "document.body.innerHTML = '<div style=\"position:fixed;inset:0;background:#f00\">PWNED</div>';"
)

HOSTILE: dict[str, str] = {
    # The templates' fitting hook, replaced for good: it cannot be assigned again.
    "fit-accessor": f"""Object.defineProperty(window, "__ogFit", {{
        get() {{ return async () => {{ {_DEFACE} }}; }}, set(v) {{}}, configurable: false }});""",
    # A timer that outlives the document.
    "interval": f"setInterval(() => {{ if (document.body) {{ {_DEFACE} }} }}, 1);",
    # Every text update goes through this setter.
    "characterdata-setter": """
      const d = Object.getOwnPropertyDescriptor(CharacterData.prototype, "data");
      Object.defineProperty(CharacterData.prototype, "data", {
        get() { return d.get.call(this); },
        set(v) { d.set.call(this, "PWNED " + v); }, configurable: true });""",
    # The templates wait for fonts before fitting the text.
    "fonts-ready-getter": """
      Object.defineProperty(FontFaceSet.prototype, "ready", { configurable: true,
        get() { document.documentElement.style.filter = "invert(1)";
                return Promise.resolve(this); } });""",
    # Generic: a patched DOM prototype, a timer and memory left behind.
    "generic": """
      Object.defineProperty(HTMLElement.prototype, "offsetHeight", { configurable: true,
        get() { return 100000; } });
      setTimeout(() => { document.title = "x"; }, 200);
      window.__hog = Array.from({ length: 200 }, () => new Uint8Array(2 ** 20).fill(7));""",
}


def hostile_html(script: str) -> str:
    return (
        "<!doctype html><html><body><h1>hostile</h1><script>"
        + script
        + "window.__ogReady = Promise.resolve();</script></body></html>"
    )


def innocent_cards() -> list[dict[str, str]]:
    cards = []
    for template in ("default", "gradient", "minimal"):
        for i in range(10):
            params = {"title": f"{template} card {i}: the quick brown fox", "template": template}
            if i % 3 == 0:
                params["subtitle"] = f"Subtitle number {i}"
            if template == "default" and i % 4 == 1:
                params.update(author="Ann Lee", theme="dark")
            cards.append(params)
    return cards


async def render_all(client: httpx.AsyncClient, cards: list[dict[str, str]]) -> list[bytes]:
    out = []
    for params in cards:
        response = await client.get(signed(params))
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "MISS"
        out.append(response.content)
    return out


def one_tab(tmp: Path) -> Any:
    # One browser with one tab: before isolation, the hostile card and every victim
    # shared a window.
    return make_settings(tmp, pages=1, browsers=1, api_keys=(API_KEY,))


@pytest.fixture(scope="module")
async def reference(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[bytes]]:
    """The innocent cards as a fresh server renders them."""
    async with running(one_tab(tmp_path_factory.mktemp("fresh"))) as (_, client):
        yield await render_all(client, innocent_cards())


async def post_html(client: httpx.AsyncClient, html: str) -> httpx.Response:
    return await client.post("/v1/og-image", json={"html": html}, headers={"x-api-key": API_KEY})


@pytest.mark.parametrize("mechanism", sorted(HOSTILE))
async def test_a_hostile_card_changes_no_later_card(
    tmp_path: Path, reference: list[bytes], mechanism: str
) -> None:
    async with running(one_tab(tmp_path)) as (_, client):
        hostile = await post_html(client, hostile_html(HOSTILE[mechanism]))
        assert hostile.status_code in (200, 422, 504), hostile.text
        got = await render_all(client, innocent_cards())
    changed = [i for i, (a, b) in enumerate(zip(got, reference, strict=True)) if a != b]
    assert changed == [], f"{mechanism}: {len(changed)} of {len(got)} later cards differ"


async def test_a_victims_own_url_is_not_poisoned_by_a_prerender(tmp_path: Path) -> None:
    """The attacker renders the victim's card in a poisoned tab first (same JSON)."""
    victim = {"title": "Quarterly results", "template": "gradient"}
    async with running(one_tab(tmp_path / "a")) as (_, client):
        await post_html(client, hostile_html(HOSTILE["fit-accessor"]))
        pre = await client.post("/v1/og-image", json=victim, headers={"x-api-key": API_KEY})
        assert pre.status_code == 200
        hit = await client.get(signed(victim))
        assert hit.headers["x-cache"] == "HIT"
    async with running(one_tab(tmp_path / "b")) as (_, client):
        fresh = await client.get(signed(victim))
    assert hit.content == fresh.content


def chromium_cpu_seconds() -> float:
    return cpu_seconds(chromium(os.getpid()))


def chromium_rss() -> int:
    return rss_bytes(chromium(os.getpid()))


async def built_in_latency(client: httpx.AsyncClient) -> float:
    """Seconds for one built-in card on a warm tab: what later cards are held to."""
    assert (await client.get(signed({"title": "warm-up"}))).status_code == 200
    started = time.monotonic()
    assert (await client.get(signed({"title": "baseline"}))).status_code == 200
    return time.monotonic() - started


async def test_a_time_bomb_ends_with_its_card(tmp_path: Path) -> None:
    bomb = "setTimeout(() => { for (;;) {} }, 300);"
    settings = make_settings(tmp_path, pages=1, browsers=1, api_keys=(API_KEY,), render_timeout=4)
    async with running(settings) as (_, client):
        baseline = await built_in_latency(client)
        assert (await post_html(client, hostile_html(bomb))).status_code == 200
        time.sleep(1.0)  # the bomb has gone off by now, if it is still alive
        cpu_before = chromium_cpu_seconds()
        time.sleep(1.0)
        idle_cpu = chromium_cpu_seconds() - cpu_before
        for i in range(3):
            started = time.monotonic()
            response = await client.get(signed({"title": f"after the bomb {i}"}))
            assert response.status_code == 200, response.text
            assert time.monotonic() - started < max(1.0, 10 * baseline)
    assert idle_cpu < 0.3, f"Chromium burnt {idle_cpu:.2f} s of CPU in 1 s with nothing to do"


async def test_memory_of_a_card_is_freed_with_it(tmp_path: Path) -> None:
    hog = "window.__hog = Array.from({ length: 12 }, () => new Uint8Array(50 * 2 ** 20).fill(1));"
    async with running(make_settings(tmp_path, pages=1, browsers=1, api_keys=(API_KEY,))) as (
        _,
        client,
    ):
        # Both browsers running and warm: the pool's and the one for untrusted cards.
        for i in range(3):
            assert (await client.get(signed({"title": f"warm {i}"}))).status_code == 200
            assert (await post_html(client, hostile_html(f"window.x = {i};"))).status_code == 200
        await asyncio.sleep(0.5)  # closed contexts' renderer processes have exited
        baseline = chromium_rss()
        await post_html(client, hostile_html(hog))
        for i in range(8):
            assert (await client.get(signed({"title": f"after {i}"}))).status_code == 200
            assert (await post_html(client, hostile_html(f"window.y = {i};"))).status_code == 200
        await asyncio.sleep(0.5)
        after = chromium_rss()
    assert after - baseline < 150 * 2**20, f"{(after - baseline) / 2**20:.0f} MiB still held"


# The GPU process is shared by every context of a browser: shader work queued by one card
# ran on after its context was closed and held every later card past its timeout.
GPU_BOMB = """<canvas id="c" width="1000" height="1000"></canvas><script>
const g = c.getContext("webgl");
if (g) {
  const sh = (t, s) => { const x = g.createShader(t); g.shaderSource(x, s); g.compileShader(x);
                         return x; };
  const p = g.createProgram();
  g.attachShader(p, sh(g.VERTEX_SHADER,
    "attribute vec2 a; void main() { gl_Position = vec4(a, 0, 1); }"));
  g.attachShader(p, sh(g.FRAGMENT_SHADER, "precision highp float; uniform float u;" +
    "void main() { float s = 0.0; for (int i = 0; i < 5000; i++) {" +
    " s += sin(float(i) * u + gl_FragCoord.x); } gl_FragColor = vec4(s, 0, 0, 1); }"));
  g.linkProgram(p); g.useProgram(p);
  const b = g.createBuffer(); g.bindBuffer(g.ARRAY_BUFFER, b);
  g.bufferData(g.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), g.STATIC_DRAW);
  g.enableVertexAttribArray(0); g.vertexAttribPointer(0, 2, g.FLOAT, false, 0, 0);
  for (let k = 0; k < 3; k++) {
    g.uniform1f(g.getUniformLocation(p, "u"), k); g.drawArrays(g.TRIANGLES, 0, 3);
  }
  g.flush();
}
window.__ogReady = Promise.resolve();
</script>"""


async def test_gpu_work_of_a_card_does_not_hold_later_cards(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, pages=1, browsers=1, api_keys=(API_KEY,), render_timeout=4)
    async with running(settings) as (_, client):
        baseline = await built_in_latency(client)
        hostile = await post_html(client, GPU_BOMB)
        assert hostile.status_code in (200, 422, 504), hostile.text
        for i in range(3):
            started = time.monotonic()
            response = await client.get(signed({"title": f"after the shaders {i}"}))
            assert response.status_code == 200, response.text
            assert time.monotonic() - started < max(1.5, 10 * baseline)


@pytest.mark.parametrize(
    "script",
    [
        "window.__ogReady = Promise.reject(new Error('no'));",
        "Object.defineProperty(window, '__ogReady', { get() { throw new Error('no'); } });",
        "HTMLImageElement.prototype.decode = () => { throw new Error('no'); };"
        "document.body.appendChild(new Image());",
    ],
)
async def test_a_broken_document_is_its_own_fault(tmp_path: Path, script: str) -> None:
    """422 for the card, not 503 for the renderer; the pool's tabs are not replaced."""
    async with running(one_tab(tmp_path)) as (app, client):
        assert (await client.get(signed({"title": "before"}))).status_code == 200
        renderer = app.renderer
        assert isinstance(renderer, ChromiumRenderer)
        tab = renderer._pool._queue[0]  # type: ignore[attr-defined]
        response = await post_html(client, f"<h1>x</h1><script>{script}</script>")
        assert response.status_code == 422, response.text
        assert response.headers["cache-control"] == "no-store"
        assert renderer._pool._queue[0] is tab  # type: ignore[attr-defined]
        assert renderer.restarts == 0
        assert (await client.get(signed({"title": "after"}))).status_code == 200


async def test_a_card_at_another_scale_changes_no_later_card(tmp_path: Path) -> None:
    card = {"title": "Same card, same bytes", "template": "gradient"}
    async with running(one_tab(tmp_path / "fresh")) as (_, client):
        fresh = (await client.get(signed(card))).content
    async with running(one_tab(tmp_path / "mixed")) as (_, client):
        for i in range(2):
            retina = {"title": f"Retina card {i}", "template": "gradient", "scale": "2"}
            assert (await client.get(signed(retina))).status_code == 200
        assert (await client.get(signed(card))).content == fresh


def test_a_card_is_the_same_bytes_whatever_its_tab_rendered_before(tmp_path: Path) -> None:
    """The same card rendered again on the same tab (``v`` changes the key, not a pixel).

    Chromium re-rasterised only the changed part of a reused page's tiles over what was
    there before: where a title crossed a shape, the edge pixels depended on the card
    before it, so a card's bytes depended on its instance's history (0 to 10 of 12 cards
    differed between two instances behind Caddy, under one ETag). A real server process:
    in-process renders followed each other too closely to show it reliably.
    """
    cards = [("gradient", f"gradient card {i}: the quick brown fox jumps") for i in range(4)]
    cards += [
        (template, f"Fleet card {i}") for template in ("gradient", "default") for i in range(4)
    ]
    env = {"OGPROXY_SECRET": SECRET, "OGPROXY_PAGES": "1", "OGPROXY_BROWSERS": "1"}
    rounds = []
    with serve(tmp_path, env=env) as server, httpx.Client(timeout=30) as client:
        for v, order in (("1", cards), ("2", cards[::-1])):  # other cards before each one
            params = [{"title": title, "template": t, "v": v} for t, title in order]
            responses = [client.get(signed(p, base=server.base + "/og.png")) for p in params]
            assert all(r.headers["x-cache"] == "MISS" for r in responses)
            rounds.append(dict(zip(order, (r.content for r in responses), strict=True)))
    changed = [card for card in cards if rounds[0][card] != rounds[1][card]]
    assert changed == []
