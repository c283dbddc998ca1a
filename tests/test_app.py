"""The HTTP contract of GET/HEAD /og.png, through the real app on the fake renderer.

Chromium only where it is the subject: a palette card's pixels, a killed browser.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.cards import (
    BASE,
    SECRET,
    Renders,
    Served,
    make_settings,
    max_channel,
    png_image,
    running,
    signed,
)
from tests.support.fake import FakeRenderer

# /readyz of a healthy instance with no object store, in this machine's isolation level
# and sandbox (as root: Chromium as nobody, in its own sandbox).
READY = {
    "ready": True,
    "degraded": False,
    "browser": True,
    "disk_cache": True,
    "object_store": "off",
    "network_isolation": "namespace",
    "browser_sandbox": "uid+chromium",
}

pytestmark = pytest.mark.anyio


def path_of(url: str) -> str:
    return url.removeprefix(BASE.removesuffix("/og.png"))


async def test_renders_png_with_immutable_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(signed({"title": "Headers", "template": "minimal"}))
    assert response.status_code == 200
    h = response.headers
    assert h["content-type"] == "image/png"
    assert h["cache-control"] == "public, max-age=31536000, immutable"
    assert h["content-length"] == str(len(response.content))
    assert h["etag"].startswith('"') and not h["etag"].startswith("W/")
    assert h["x-cache"] == "MISS"
    assert png_image(response.content).size == (1200, 630)

    again = await client.get(signed({"title": "Headers", "template": "minimal"}))
    assert again.headers["x-cache"] == "HIT"
    assert again.headers["etag"] == h["etag"]
    assert again.content == response.content


async def test_parameter_order_does_not_matter(client: httpx.AsyncClient) -> None:
    url = signed({"title": "Order", "subtitle": "sub", "template": "default"})
    query = url.split("?", 1)[1]
    reordered = "&".join(reversed(query.split("&")))
    a = await client.get(url)
    b = await client.get(f"/og.png?{reordered}")
    assert a.status_code == b.status_code == 200
    assert a.headers["etag"] == b.headers["etag"]


async def test_default_values_share_a_cache_entry(client: httpx.AsyncClient) -> None:
    implicit = await client.get(signed({"title": "Defaults"}))
    explicit = await client.get(
        signed({"title": "Defaults", "template": "default", "accentColor": "#2563EB"})
    )
    assert implicit.headers["etag"] == explicit.headers["etag"]
    assert explicit.headers["x-cache"] == "HIT"


async def test_if_none_match_gives_304_and_head_gives_headers(client: httpx.AsyncClient) -> None:
    url = signed({"title": "Conditional"})
    first = await client.get(url)
    tag = first.headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}'):
        cond = await client.get(url, headers={"If-None-Match": header})
        assert cond.status_code == 304
        assert cond.content == b""
        assert cond.headers["etag"] == tag
        assert cond.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await client.get(url, headers={"If-None-Match": '"nope"'})).status_code == 200

    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["etag"] == tag
    assert head.headers["content-type"] == "image/png"


async def test_head_on_a_miss_renders_and_has_no_body(client: httpx.AsyncClient) -> None:
    head = await client.head(signed({"title": "Head first"}))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["x-cache"] == "MISS"
    get = await client.get(signed({"title": "Head first"}))
    assert get.headers["x-cache"] == "HIT"
    assert head.headers["content-length"] == str(len(get.content))


FORBIDDEN_CASES: dict[str, Callable[[str], str]] = {
    "missing": lambda u: u.split("&sig=")[0],
    "wrong": lambda u: u[:-4] + ("AAAA" if not u.endswith("AAAA") else "BBBB"),
    "empty": lambda u: u.split("&sig=")[0] + "&sig=",
    "tampered title": lambda u: u.replace("title=Secret", "title=Secreu"),
    "added parameter": lambda u: u.replace("&sig=", "&subtitle=x&sig="),
    "other secret": lambda u: signed({"title": "Secret"}, secret="another-secret-0123456789"),
    "repeated sig": lambda u: u + "&sig=" + u.split("&sig=")[1],
}


@pytest.mark.parametrize("case", FORBIDDEN_CASES)
async def test_bad_signatures_get_one_generic_403(
    client: httpx.AsyncClient, renders: Renders, case: str
) -> None:
    before = renders()
    url = FORBIDDEN_CASES[case](signed({"title": "Secret"}))
    response = await client.get(url)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid or missing signature.", "status": 403}
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers
    assert renders() == before


async def test_signature_checked_before_parameters(client: httpx.AsyncClient) -> None:
    # An invalid parameter without a valid signature says nothing about the parameter.
    response = await client.get("/og.png?title=&template=nope&sig=xyz")
    assert response.status_code == 403
    assert "template" not in response.text


BAD_PARAMS = [
    ({"title": ""}, "title", "must not be empty"),
    ({"title": "   "}, "title", "must not be empty"),
    ({"subtitle": "no title"}, "title", "is required"),
    ({"title": "x" * 201}, "title", "at most 200"),
    ({"title": "ok", "subtitle": "y" * 301}, "subtitle", "at most 300"),
    ({"title": "ok", "template": "fancy"}, "template", "unknown template"),
    ({"title": "ok", "accentColor": "red"}, "accentColor", "not a colour"),
    ({"title": "ok", "accentColor": "#12345"}, "accentColor", "not a colour"),
    ({"title": "ok", "accentColor": "#ggg"}, "accentColor", "not a colour"),
    ({"title": "ok", "colour": "#fff"}, "colour", "unknown parameter"),
    ({"title": "line\nbreak"}, "title", "control characters"),
    ([("title", "a"), ("title", "b")], "title", "more than once"),
]


@pytest.mark.parametrize(("params", "name", "message"), BAD_PARAMS)
async def test_invalid_parameters_get_400_naming_them(
    client: httpx.AsyncClient,
    renders: Renders,
    params: dict[str, str],
    name: str,
    message: str,
) -> None:
    before = renders()
    response = await client.get(signed(params))
    assert response.status_code == 400
    body = response.json()
    assert body["param"] == name
    assert f"'{name}'" in body["error"] and message in body["error"]
    assert response.headers["cache-control"] == "no-store"
    assert renders() == before


async def test_invalid_utf8_with_valid_signature_is_400(client: httpx.AsyncClient) -> None:
    from ogproxy.signing import signature

    pairs = [(b"title", b"\xff\xfe")]
    sig = signature(SECRET, "/og.png", pairs)
    response = await client.get(f"/og.png?title=%FF%FE&sig={sig}")
    assert response.status_code == 400
    assert response.json()["param"] == "title"


async def test_query_over_4kib_is_414(client: httpx.AsyncClient) -> None:
    response = await client.get(signed({"title": "t", "subtitle": "é" * 800}))
    assert response.status_code == 414
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
    post = await client.post(signed({"title": "x"}))
    assert post.status_code == 405 and post.headers["cache-control"] == "no-store"


async def test_single_flight_renders_once(client: httpx.AsyncClient, renders: Renders) -> None:
    before = renders()
    url = signed({"title": "Stampede of crawlers", "template": "gradient"})
    responses = await asyncio.gather(*(client.get(url) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}
    sources = [r.headers["x-cache"] for r in responses]
    # One rendered it; the others waited for that render (and say so), or came after it.
    assert sources.count("MISS") == 1 and "WAIT" in sources
    assert set(sources) <= {"MISS", "WAIT", "HIT"}
    metrics = (await client.get("/metrics")).text  # counted as what they were
    assert 'ogproxy_requests_total{cache="WAIT",route="/og.png",status="200"}' in metrics
    assert len({r.content for r in responses}) == 1
    assert renders() == before + 1


async def test_cache_survives_a_restart_without_rendering(tmp_path: Path) -> None:
    url = signed({"title": "Persistent", "template": "minimal"})
    async with running(make_settings(tmp_path), FakeRenderer()) as (_, client):
        first = await client.get(url)
        assert first.headers["x-cache"] == "MISS"
    async with running(make_settings(tmp_path), FakeRenderer()) as (app, client):
        second = await client.get(url)
        assert second.headers["x-cache"] == "HIT"
        assert second.content == first.content
        assert app.renderer.renders == 0


async def test_errors_are_not_cached(tmp_path: Path) -> None:
    renderer = FakeRenderer(faults=["invalid"])
    async with running(make_settings(tmp_path), renderer) as (app, client):
        await client.get(signed({"title": ""}))
        await client.get("/og.png?title=x&sig=bad")
        failed = signed({"title": "The renderer refuses it"})
        assert (await client.get(failed)).status_code == 422
        assert app.store.disk.cache is not None and len(app.store.disk.cache) == 0
        assert len(app.store.memory) == 0


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


async def test_palette_mode_is_smaller_and_looks_the_same(
    chromium_client: httpx.AsyncClient,
) -> None:
    client = chromium_client  # the subject is a real card's pixels
    params = {"title": "Palette check ✨", "subtitle": "Small files", "template": "gradient"}
    lossless = await client.get(signed(params))
    palette = await client.get(signed({**params, "palette": "1"}))
    assert lossless.status_code == palette.status_code == 200
    assert lossless.headers["etag"] != palette.headers["etag"]
    a, b = png_image(lossless.content), png_image(palette.content)
    assert a.mode == "RGB" and b.mode == "P" and b.size == (1200, 630)
    assert len(palette.content) < 0.75 * len(lossless.content)
    from PIL import ImageChops

    diff = ImageChops.difference(a, b.convert("RGB"))
    total_error = sum(
        sum(i * n for i, n in enumerate(diff.getchannel(c).histogram())) for c in range(3)
    )
    assert total_error / (1200 * 630 * 3) < 0.5  # mean channel error, in levels of 255
    assert max_channel(diff) <= 48
    off = await client.get(signed({**params, "palette": "false"}))
    assert off.headers["etag"] == lossless.headers["etag"]


async def test_palette_must_be_a_boolean(client: httpx.AsyncClient) -> None:
    response = await client.get(signed({"title": "x", "palette": "yes"}))
    assert response.status_code == 400 and response.json()["param"] == "palette"


async def test_server_default_palette(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, png_palette=True), FakeRenderer()) as (_, client):
        response = await client.get(signed({"title": "Default palette"}))
        assert png_image(response.content).mode == "P"
        explicit = await client.get(signed({"title": "Default palette", "palette": "0"}))
        assert png_image(explicit.content).mode == "RGB"


async def test_repeat_hits_skip_the_framework_but_not_the_checks(served: Served) -> None:
    app, client = served
    url = signed({"title": "Fast path", "template": "minimal"})
    query = url.split("?", 1)[1].encode()
    first = await client.get(url)
    assert app.known.get("/og.png", query) is not None
    again = await client.get(url)
    full_path = await client.get("/og.png?" + "&".join(reversed(query.decode().split("&"))))
    assert again.headers["x-cache"] == full_path.headers["x-cache"] == "HIT"
    assert again.content == full_path.content == first.content
    skip = {"date", "x-request-id"}  # differ per request
    assert again.headers["x-request-id"] != full_path.headers["x-request-id"]
    assert {k: v for k, v in again.headers.items() if k not in skip} == {
        k: v for k, v in full_path.headers.items() if k not in skip
    }
    head = await client.head(url)
    assert head.content == b"" and head.headers["content-length"] == str(len(first.content))
    cond = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert cond.status_code == 304 and cond.content == b""
    # A known query under another path, or one changed byte, is not known.
    assert (await client.get(url.replace("/og.png", "/og.jpg"))).status_code == 403
    assert (await client.get(url[:-1] + ("A" if url[-1] != "A" else "B"))).status_code == 403


async def test_known_queries_are_bounded() -> None:
    from ogproxy.hits import KnownQueries

    known = KnownQueries(max_entries=3)
    for i in range(5):
        known.remember("/og.png", str(i).encode(), f"k{i}")
    assert len(known) == 3
    assert known.get("/og.png", b"0") is None
    assert known.get("/og.png", b"4") == ("k4", b"image/png")


async def test_cdn_headers_and_no_vary(client: httpx.AsyncClient) -> None:
    response = await client.get(signed({"title": "CDN"}))
    assert response.headers["cdn-cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["accept-ranges"] == "bytes"
    assert "vary" not in response.headers and "set-cookie" not in response.headers


@pytest.mark.parametrize("fast", [False, True])
async def test_range_requests(client: httpx.AsyncClient, fast: bool) -> None:
    url = signed({"title": "Ranges", "template": "gradient"})
    full = (await client.get(url)).content
    if not fast:  # the full request path: a reordered query is not a known one
        url = "/og.png?" + "&".join(reversed(url.split("?", 1)[1].split("&")))
    part = await client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == full[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(full)}"
    assert part.headers["content-length"] == "100"
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full[-10:]
    beyond = await client.get(url, headers={"Range": f"bytes={len(full)}-"})
    assert beyond.status_code == 416 and beyond.headers["cache-control"] == "no-store"
    assert beyond.headers["content-range"] == f"bytes */{len(full)}"
    tag = part.headers["etag"]
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == full
    same = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": tag})
    assert same.status_code == 206 and same.content == full[:10]
    multi = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and multi.content == full


async def test_readyz_and_metrics_follow_the_traffic(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path), FakeRenderer()) as (app, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {**READY, "network_isolation": "fake", "browser_sandbox": "fake"}
        url = signed({"title": "Counted"})
        for _ in range(3):
            await client.get(url)
        await client.get(url.split("&sig=")[0])
        await client.get("/v1/templates")
        text = (await client.get("/metrics")).text
        assert 'ogproxy_requests_total{cache="",route="/v1/templates",status="200"} 1.0' in text
        assert 'ogproxy_requests_total{cache="MISS",route="/og.png",status="200"} 1.0' in text
        assert 'ogproxy_requests_total{cache="HIT",route="/og.png",status="200"} 2.0' in text
        assert 'ogproxy_requests_total{cache="",route="/og.png",status="403"} 1.0' in text
        assert "ogproxy_render_seconds_count 1.0" in text
        assert "ogproxy_render_queue_depth 0.0" in text
        assert "ogproxy_browser_restarts_total 0.0" in text
        assert "ogproxy_cache_entries 1.0" in text
        assert "ogproxy_renders_total 1.0" in text
        # Two memory hits, and the miss that went on to disk and rendered.
        assert 'ogproxy_cache_tier_lookups_total{result="hit",tier="memory"} 2.0' in text
        assert 'ogproxy_cache_tier_lookups_total{result="miss",tier="disk"} 1.0' in text
        assert isinstance(app.renderer, FakeRenderer)
        app.renderer.crash()
        down = await client.get("/readyz")  # reports the dead browser, and revives it
        assert down.status_code == 503 and down.json()["browser"] is False
        assert (await client.get(signed({"title": "Relaunch"}))).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "ogproxy_browser_restarts_total 1.0" in metrics
        assert (await client.get("/readyz")).status_code == 200


@pytest.mark.browser
async def test_readyz_brings_a_dead_browser_back_without_traffic(tmp_path: Path) -> None:
    # Behind a load balancer an instance that fails its probe gets no traffic, so no
    # render would ever relaunch its browser: the probe itself has to.
    others = set(browsers_of_this_process())  # another app's, in this module's process
    async with running(make_settings(tmp_path)) as (app, client):
        renderer = app.renderer
        killed = [pid for pid in browsers_of_this_process() if pid not in others]
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not renderer.ready:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/readyz")).status_code == 503
        for _ in range(150):  # every browser back, through probes alone
            await asyncio.sleep(0.1)
            ready = await client.get("/readyz")
            if ready.status_code == 200 and renderer.restarts == len(killed):
                break
        assert ready.json() == READY
        assert renderer.restarts == len(killed) and renderer.renders == 0
        assert (await client.get(signed({"title": "Back"}))).status_code == 200
        assert renderer.restarts == len(killed)


def browsers_of_this_process() -> list[int]:
    from tests.support.processes import browsers

    return browsers(os.getpid())


async def test_version_parameter_busts_caches(client: httpx.AsyncClient) -> None:
    index = (await client.get("/v1/templates")).json()["templates"]
    assert set(index) >= {"default", "minimal", "gradient"}
    assert len(index["gradient"]["version"]) == 12
    assert {"name": "theme", "kind": "choice", "choices": ["light", "dark"]} in index["default"][
        "params"
    ]
    plain = await client.get(signed({"title": "Versioned"}))
    v1 = await client.get(signed({"title": "Versioned", "v": index["default"]["version"]}))
    v2 = await client.get(signed({"title": "Versioned", "v": "2026-11-25"}))
    assert len({plain.headers["etag"], v1.headers["etag"], v2.headers["etag"]}) == 3
    assert v2.headers["x-cache"] == "MISS"
    bad = await client.get(signed({"title": "Versioned", "v": "no spaces"}))
    assert bad.status_code == 400 and bad.json()["param"] == "v"


async def test_a_superscript_digit_is_a_400_not_a_500(client: httpx.AsyncClient) -> None:
    # "²".isdigit() is true, yet int("²") raises: the check must be ASCII digits.
    for value in ("\u00b2", "\u0661\u0662\u0660\u0660"):
        response = await client.get(signed({"title": "x", "width": value}))
        assert response.status_code == 400 and response.json()["param"] == "width", value
