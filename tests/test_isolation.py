"""The renderer reaches nothing: no network, no files, even from a hostile template."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ogproxy.config import TEMPLATES_DIR
from tests.support.cards import make_settings, png_image, running, signed

Listener = tuple[int, list[bytes]]

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

# Both isolation levels are tested: the browser in an empty network namespace, and the
# defence that also holds where namespaces are not available (interception, a proxy to
# nowhere, WebRTC and speculative loading disabled).
LEVELS = pytest.mark.parametrize("level", ["namespace", "flags"])

# No Content-Security-Policy here, unlike the built-in templates: what blocks these is the
# renderer itself (offline context, every request aborted, a page with no file origin).
HOSTILE = """<!doctype html><html><head>
<link rel="stylesheet" href="http://127.0.0.1:{port}/css">
<link rel="preload" as="image" href="http://localhost:{port}/preload">
<style>@import url("http://127.0.0.1:{port}/import");
  body {{ background: #fff url("http://127.0.0.1:{port}/bg"); font-family: x; }}
  @font-face {{ font-family: x; src: url("http://127.0.0.1:{port}/font.woff2"); }}</style>
<script src="http://127.0.0.1:{port}/script.js"></script>
</head><body>
<h1>{{{{ title }}}}</h1>
<img src="http://127.0.0.1:{port}/img"><img src="http://localhost:{port}/img2">
<iframe src="http://127.0.0.1:{port}/frame"></iframe>
<iframe id="f" src="file:///etc/passwd"></iframe>
<video src="http://127.0.0.1:{port}/video" autoplay></video>
<object data="http://127.0.0.1:{port}/object"></object>
<script>
  const leak = () => {{ document.body.style.background = "#ff0000"; }};
  fetch("http://127.0.0.1:{port}/fetch").then(leak, () => {{}});
  fetch("file:///etc/passwd").then(leak, () => {{}});
  try {{ const ws = new WebSocket("ws://127.0.0.1:{port}/ws"); ws.onopen = leak; }} catch (e) {{}}
  try {{ navigator.sendBeacon("http://127.0.0.1:{port}/beacon", "x"); }} catch (e) {{}}
  try {{ new EventSource("http://127.0.0.1:{port}/sse").onopen = leak; }} catch (e) {{}}
  const xhr = new XMLHttpRequest(); xhr.onload = leak;
  try {{ xhr.open("GET", "http://127.0.0.1:{port}/xhr"); xhr.send(); }} catch (e) {{}}
  try {{
    if (document.getElementById("f").contentDocument.body.innerText.includes("root:")) leak();
  }} catch (e) {{}}
  window.__ogReady = new Promise((r) => setTimeout(r, 300));
</script></body></html>"""


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback TCP listener that records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    seen.append(conn.recv(200))
                except OSError:
                    seen.append(b"(connected)")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


@LEVELS
async def test_hostile_template_reaches_nothing(
    tmp_path: Path, listener: Listener, level: str
) -> None:
    port, seen = listener
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder)
    (folder / "hostile.html").write_text(HOSTILE.format(port=port))
    # Served degraded (the default: the refusals are logged and counted), so the pixels
    # can show nothing was read; the strict answer, a 422 for them, is checked below.
    settings = make_settings(tmp_path, templates_dir=folder, network_isolation=level)
    async with running(settings) as (app, client):
        assert app.renderer.network_isolation == level
        # The listener itself works: a plain client reaches it.
        with socket.create_connection(("127.0.0.1", port)) as probe:
            probe.sendall(b"probe")
        await asyncio.sleep(0.3)
        assert seen == [b"probe"]
        response = await client.get(signed({"title": "Hostile", "template": "hostile"}))
        assert response.status_code == 200 and response.headers["x-cache"] == "DEGRADED"
        await asyncio.sleep(1.0)  # anything slow or delayed would have arrived by now
    assert seen == [b"probe"], f"the renderer connected out: {seen[1:]}"
    image = png_image(response.content).convert("RGB")
    assert image.getpixel((5, 5)) != (255, 0, 0), "a request or file read succeeded"


async def test_parameters_cannot_inject_markup(chromium_client: httpx.AsyncClient) -> None:
    client = chromium_client  # the subject is what Chromium draws
    evil = (
        '"><img src=http://127.0.0.1:9/x onerror=alert(1)><script>document.body.remove()</script>'
    )
    response = await client.get(signed({"title": evil, "subtitle": evil}))
    assert response.status_code == 200
    colours = png_image(response.content).convert("RGB").getcolors(1_000_000) or []
    assert len(colours) > 50  # the card is still drawn, text and all


@pytest.mark.parametrize(
    "escape",
    [
        '<meta http-equiv="refresh" content="0;url=http://127.0.0.1:{port}/refresh">',
        '<script>location.href = "http://127.0.0.1:{port}/location";</script>',
    ],
)
async def test_a_page_that_navigates_away_is_refused_and_goes_nowhere(
    tmp_path: Path, listener: Listener, escape: str
) -> None:
    port, seen = listener
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder)
    (folder / "away.html").write_text("<h1>{{ title }}</h1>" + escape.format(port=port))
    async with running(make_settings(tmp_path, templates_dir=folder)) as (_, client):
        response = await client.get(signed({"title": "Leaving", "template": "away"}))
        # Either the blocked navigation never left the page (a normal card), or it did and
        # the card is refused as the template's fault; never a 5xx, never a request out.
        assert response.status_code in (200, 422)
        if response.status_code == 422:
            assert "navigated away" in response.json()["error"]
            assert response.headers["cache-control"] == "no-store"
        assert (await client.get(signed({"title": "Still fine"}))).status_code == 200
        await asyncio.sleep(0.5)
    assert seen == []


@LEVELS
async def test_custom_html_gets_the_same_sandbox(
    tmp_path: Path, listener: Listener, level: str
) -> None:
    port, seen = listener
    settings = make_settings(
        tmp_path, api_keys=("api-key-0123456789",), network_isolation=level, asset_failure="fail"
    )
    async with running(settings) as (_, client):
        response = await client.post(
            "/v1/og-image",
            json={"html": HOSTILE.format(port=port)},
            headers={"x-api-key": "api-key-0123456789"},
        )
        # What the page asked for was refused, and strict says so: a 422 naming it.
        assert response.status_code == 422, response.text
        assert f"127.0.0.1:{port}" in response.json()["error"]
        assert response.headers["cache-control"] == "no-store"
        await asyncio.sleep(1.0)
    assert seen == [], f"custom HTML connected out: {seen}"


@pytest.fixture
def udp_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback UDP socket that records every datagram it gets (STUN, TURN)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                seen.append(sock.recv(2048))
            except TimeoutError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    yield sock.getsockname()[1], seen
    stop.set()
    thread.join()
    sock.close()


# Both reached a loopback listener through an offline context that aborts every request:
# speculative loads are made by the browser, not the page, and WebRTC opens its own sockets.
ESCAPES = """<!doctype html><html><head>
<script type="speculationrules">
{{"prefetch": [{{"source": "list", "urls": ["http://127.0.0.1:{port}/prefetch"]}}],
 "prerender": [{{"source": "list", "urls": ["http://127.0.0.1:{port}/prerender"]}}]}}
</script>
<link rel="prefetch" href="http://127.0.0.1:{port}/link-prefetch">
<link rel="preconnect" href="http://127.0.0.1:{port}">
<link rel="dns-prefetch" href="http://localhost:{port}">
<script>window.__ogReady = new Promise((r) => setTimeout(r, 1500));</script>
</head><body><h1 id="out">escapes</h1><script>
  const report = (text) => {{ document.getElementById("out").textContent += " " + text; }};
  // One connection per ICE server, so that one the browser refuses does not stop the rest.
  const servers = [
    {{ urls: "turn:127.0.0.1:{port}?transport=tcp", username: "u", credential: "p" }},
    {{ urls: "turn:127.0.0.1:{udp}?transport=udp", username: "u", credential: "p" }},
    {{ urls: "stun:127.0.0.1:{udp}" }},
  ];
  const gathered = servers.map((server) => new Promise((done) => {{
    try {{
      const pc = new RTCPeerConnection({{ iceServers: [server] }});
      pc.onicecandidateerror = (e) => report(e.errorCode + ":" + e.url);
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      pc.createDataChannel("x");
      pc.createOffer().then((o) => pc.setLocalDescription(o));
    }} catch (e) {{ report("refused " + server.urls); done(); }}
  }}));
  // The card waits until every server was tried (gathering complete), or 4 s.
  window.__ogReady = Promise.race([
    Promise.all(gathered), new Promise((r) => setTimeout(r, 4000))]);
</script></body></html>"""


@LEVELS
async def test_speculation_rules_and_webrtc_reach_nothing(
    tmp_path: Path, listener: Listener, udp_listener: Listener, level: str
) -> None:
    port, seen = listener
    udp, datagrams = udp_listener
    settings = make_settings(tmp_path, api_keys=("api-key-0123456789",), network_isolation=level)
    async with running(settings) as (_, client):
        response = await client.post(
            "/v1/og-image",
            json={"html": ESCAPES.format(port=port, udp=udp)},
            headers={"x-api-key": "api-key-0123456789"},
        )
        assert response.status_code == 200, response.text
        await asyncio.sleep(2.0)
    assert seen == [], f"the renderer connected out: {seen}"
    assert datagrams == [], f"the renderer sent datagrams: {datagrams}"


async def test_each_untrusted_card_gets_a_context_never_used_before(tmp_path: Path) -> None:
    """The next card's context is made ready while a card renders (issue 20): it is handed
    to one card only, so every card renders in a context no card used before."""
    from ogproxy.browser import Chromium

    used: list[object] = []
    original = Chromium.isolated

    async def recorded(self: Chromium, output: object) -> object:
        fresh = await original(self, output)  # type: ignore[arg-type]
        used.append(fresh.context)
        return fresh

    Chromium.isolated = recorded  # type: ignore[assignment,method-assign]
    try:
        async with running(make_settings(tmp_path)) as (app, client):
            mark = "<script>localStorage.setItem('x', '1'); window.name = 'used'</script>"
            for i in range(3):
                html = f"<body style='margin:0;background:#fff'>{mark}<p id=n>{i}</p></body>"
                response = await client.get(signed({"html": html}))
                assert response.status_code == 200
            spare = app.renderer._untrusted._spare  # type: ignore[attr-defined]
            waiting = (await spare.made).context
    finally:
        Chromium.isolated = original  # type: ignore[method-assign]
    assert len({id(c) for c in used}) == 3  # a context a card
    assert all(c is not waiting for c in used)  # and the one waiting is none of them


async def test_a_spare_whose_renderer_died_while_it_waited_is_not_used(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        html = "<body style='margin:0;background:#fff'><p>{}</p></body>"
        assert (await client.get(signed({"html": html.format(1)}))).status_code == 200
        untrusted = app.renderer._untrusted  # type: ignore[attr-defined]
        spare = await untrusted._spare.made
        with contextlib.suppress(Exception):  # the renderer dies under the call: no answer
            await asyncio.wait_for(spare.cdp.send("Page.crash"), 2)
        for _ in range(100):
            if spare.crashed:
                break
            await asyncio.sleep(0.05)
        assert spare.crashed
        second = await client.get(signed({"html": html.format(2)}))
        assert second.status_code == 200, second.text
