"""Hostile and oversized requests, fuzzed: never a 500, never a render without a signature."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from ogproxy.app import app_for
from ogproxy.limits import MAX_HEADER_BYTES
from ogproxy.rendering import Renderer
from ogproxy.service import Service
from ogproxy.signing import canonical_query, parse_query, signature
from tests.support.assethost import AssetHost, Reply, asset_host
from tests.support.cards import SECRET, make_settings, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio
API_KEY = "fuzz-api-key-0123456789"


class AppThread:
    """The app (on the fake renderer unless another is given) on an event loop in a
    thread, called with raw ASGI scopes."""

    def __init__(self, tmp: Path, renderer: Renderer | None = None) -> None:
        settings = make_settings(tmp, api_keys=(API_KEY,))
        self.service = Service.build(settings, renderer or FakeRenderer())
        self.app = app_for(self.service)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.thread.start()
        assert self._ready.wait(60)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.app.router.lifespan_context(self.app):
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)
        self.loop.close()

    @property
    def renders(self) -> int:
        return int(self.service.renderer.renders)

    def request(
        self,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        return asyncio.run_coroutine_threadsafe(
            self._request(path, query, headers or [], body), self.loop
        ).result(60)

    async def _request(
        self, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> tuple[int, bytes]:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET" if body is None else "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"fuzz"), *headers],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        status, answer = 0, b""

        async def receive() -> Message:
            return {"type": "http.request", "body": body or b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status, answer
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                answer += message.get("body", b"")

        await self.app(scope, receive, send)
        return status, answer


@pytest.fixture(scope="module")
def app_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppThread]:
    runner = AppThread(tmp_path_factory.mktemp("fuzz"))
    yield runner
    runner.close()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_random_query_bytes_never_500_never_render(app_thread: AppThread, query: bytes) -> None:
    before = app_thread.renders
    status, _ = app_thread.request("/og.png", query)
    assert status in (403, 414), (status, query)
    assert app_thread.renders == before


PIECES = st.sampled_from(
    [
        b"title=",
        b"sig=",
        b"subtitle=",
        b"template=",
        b"accentColor=",
        b"palette=",
        b"&",
        b"=",
        b"%",
        b"%ff",
        b"%00",
        b"%2",
        b"+",
        b"%20",
        b"\xff",
        b"\xc3",
        b"sig=abc",
        b"title=x",
        b";",
        b"#",
        b"?",
        b"&&",
        b"sig=" + b"A" * 43,
    ]
)


@FUZZ
@given(st.lists(st.one_of(PIECES, st.binary(max_size=8)), max_size=40))
def test_query_shaped_garbage_is_refused(app_thread: AppThread, pieces: list[bytes]) -> None:
    before = app_thread.renders
    status, body = app_thread.request("/og.png", b"".join(pieces))
    assert status in (403, 414), (status, body)
    assert app_thread.renders == before


VALUES = st.one_of(st.text(max_size=60), st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
NAMES = st.sampled_from(
    ["title", "subtitle", "template", "accentColor", "palette", "x", "", "sig2"]
)


@FUZZ
@given(st.lists(st.tuples(NAMES, VALUES), min_size=0, max_size=6))
def test_validly_signed_junk_is_a_clear_4xx(
    app_thread: AppThread, params: list[tuple[str, str]]
) -> None:
    """Signed correctly but otherwise arbitrary (the signer is the page owner): 200 or 4xx."""
    pairs = [(n.encode(), v.encode("utf-8", "surrogatepass")) for n, v in params]
    query = canonical_query(pairs).encode()
    sig = signature(SECRET, "/og.png", parse_query(query))
    status, body = app_thread.request("/og.png", query + b"&sig=" + sig.encode())
    assert status in (200, 400, 414), (status, body[:200])
    if status == 400:
        assert json.loads(body)["param"] is not None


DIGITS = st.one_of(
    st.just(b""),
    st.integers(0, 10**6).map(lambda n: str(n).encode()),
    st.integers(1, 9000).map(lambda n: b"9" * n),  # past int()'s 4300-digit limit
    st.integers(1, 9000).map(lambda n: b"0" * n + b"1"),
)
RANGES = st.one_of(
    st.tuples(DIGITS, DIGITS).map(lambda ab: b"bytes=" + ab[0] + b"-" + ab[1]),
    st.lists(st.tuples(DIGITS, DIGITS), min_size=2, max_size=4).map(
        lambda spans: b"bytes=" + b",".join(a + b"-" + b for a, b in spans)
    ),
    st.binary(max_size=80),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(range_header=RANGES, fast=st.booleans())
def test_any_range_header_is_200_206_or_416(
    app_thread: AppThread, range_header: bytes, fast: bool
) -> None:
    url = signed({"title": "Ranged", "template": "minimal"})
    query = url.split("?", 1)[1].encode()
    if not fast:  # a respelled query verifies but is never on the fast path
        query = query.replace(b"title=", b"%74itle=")
    full = app_thread.request("/og.png", query)
    status, body = app_thread.request("/og.png", query, [(b"range", range_header)])
    # Refused like any oversized head: the limit counts every name and value (host: fuzz).
    too_big = len(b"range" + range_header + b"host" + b"fuzz") > MAX_HEADER_BYTES
    assert status in ((431,) if too_big else (200, 206, 416)), (status, range_header[:80])
    if status == 206:
        assert body and body in full[1]


def _nested(depth: int, kind: tuple[bytes, bytes], closed: bool) -> bytes:
    opener, closer = kind
    return opener * depth + b"1" + (closer * depth if closed else b"")


JSON_BODIES = st.one_of(
    st.builds(
        lambda depth, kind, closed: b'{"x": ' + _nested(depth, kind, closed) + b"}",
        st.integers(1, 200_000),
        st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")]),
        st.booleans(),
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=40,
    ).map(lambda value: json.dumps({"x": value}).encode()),
)


@FUZZ
@given(JSON_BODIES)
def test_any_json_nesting_is_a_4xx(app_thread: AppThread, body: bytes) -> None:
    headers = [(b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")]
    status, answer = app_thread.request("/v1/og-image", b"", headers, body=body)
    assert status in (400, 413), (status, body[:60], answer[:200])


HOSTS = st.sampled_from(
    [
        "example.com",
        "127.0.0.1",
        "[::1]",
        "[::1",
        "::1]",
        "[fe80::1%25eth0]",
        "[v1.x]",
        "",
        "a:b:c",
        "xn--",
        "%00",
        "\u00e9.example",
        "[1:2:3:4:5:6:7:8:9]",
        "@",
        "a@b",
        "[]",
    ]
)
PORTS = st.one_of(
    st.sampled_from(
        [
            "",
            ":",
            ":0",
            ":80",
            ":443",
            ":65535",
            ":65536",
            ":99999",
            ":-1",
            ":1:2",
            ":80:443",
            ":abc",
            ": 80",
            ":+80",
            ":٣",
        ]
    ),
    st.integers(0, 10**30).map(lambda n: f":{n}"),
)
IMAGE_URLS = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    st.sampled_from(["https://", "http://", "HTTPS://", "https:/", "https:///", "ftp://"]),
    HOSTS,
    PORTS,
    st.sampled_from(["", "/", "/a.png", "/%zz", "?q", "#f", "/a b"]),
)


@FUZZ
@given(url=IMAGE_URLS, name=st.sampled_from(["avatar", "logo"]))
def test_any_image_url_shape_is_a_clear_400(app_thread: AppThread, url: str, name: str) -> None:
    """No image origin is allowed here, so every URL is refused before any fetch."""
    before = app_thread.renders
    signed_url = signed({"title": "Images", "template": "default", name: url})
    status, body = app_thread.request("/og.png", signed_url.split("?", 1)[1].encode())
    assert status == 400, (status, url, body[:200])
    assert json.loads(body)["param"] == name
    assert app_thread.renders == before


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"x-big", b"v" * 20_000)], 431),
        ([(f"x-h{i}".encode(), b"v") for i in range(100)], 431),
    ],
)
def test_oversized_headers_are_refused(
    app_thread: AppThread, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    assert app_thread.request("/og.png", b"title=x&sig=y", headers)[0] == status


def test_oversized_url_is_refused(app_thread: AppThread) -> None:
    assert app_thread.request("/og.png", b"a" * 9000)[0] == 414
    assert app_thread.request("/" + "p" * 9000, b"")[0] == 414


def test_real_http_parser_refuses_garbage_without_500(tmp_path: Path) -> None:
    from tests.support.servers import serve

    with serve(tmp_path, env={"OGPROXY_SECRET": SECRET}, fake=True) as server:
        port = int(server.base.rsplit(":", 1)[1])
        for raw in (
            b"GET /og.png?title=%ff%00\xff\xfe&sig=\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /og.png?" + b"t" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /og.png HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 30_000 + b"\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(raw)
                try:
                    reply = conn.recv(200)
                except OSError:
                    reply = b""
            assert not reply.startswith(b"HTTP/1.1 5"), (raw[:40], reply)
        good = signed({"title": "Still serving"}, base=server.base + "/og.png")
        import httpx

        assert httpx.get(good, timeout=30).status_code == 200


async def test_each_request_is_logged_as_json_without_the_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ogproxy import accesslog

    monkeypatch.setattr(accesslog.SINK, "stream", None)  # through logging, where caplog sees it
    monkeypatch.setattr(accesslog.SINK, "enabled", True)
    caplog.set_level(logging.INFO, logger="ogproxy.access")
    url = signed({"title": "Logged, secret-free"})
    await client.get(url)
    await client.get(url)
    await client.get(url.split("&sig=")[0])
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ogproxy.access"]
    assert [(line["status"], line["cache"]) for line in lines] == [
        (200, "MISS"),
        (200, "HIT"),
        (403, None),
    ]
    assert lines[0]["render_ms"] > 0 and len(lines[0]["key"]) == 12
    assert all(line["path"] == "/og.png" and line["method"] == "GET" for line in lines)
    text = caplog.text
    assert "sig=" not in text and "Logged" not in text and SECRET not in text


# --- Hostile input, third round (issue 19): in process, on the fake renderer -------------


@pytest.fixture
async def on_fake(tmp_path: Path) -> AsyncIterator[tuple[Service, httpx.AsyncClient, AssetHost]]:
    """An app on the fake renderer with an API key, the playground, and one allowed origin;
    strict about assets (their errors are the subject here; degraded cards: test_degraded)."""
    with asset_host() as host:
        settings = make_settings(
            tmp_path / "cache",
            api_keys=(API_KEY,),
            asset_origins=(host.origin,),
            asset_failure="fail",
            admin_token=ADMIN_TOKEN,
        )
        async with running(settings, FakeRenderer()) as (service, client):
            yield service, client, host


ADMIN_TOKEN = "fuzz-admin-token-0123456789"


@pytest.mark.parametrize(
    "key", ["\ud800", "title\udfff", "\udcff" * 50], ids=["lone", "after", "many"]
)
async def test_a_json_key_that_is_not_unicode_is_a_400_naming_it(
    on_fake: tuple[Service, httpx.AsyncClient, AssetHost], key: str
) -> None:
    service, client, _ = on_fake
    body = json.dumps({"title": "t", key: "1"})  # a lone surrogate, as JSON writes it: \ud800
    api = await client.post(
        "/v1/og-image",
        content=body,
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    host = f"{service.settings.host}:{service.settings.port}"
    sign = await client.post(
        "/playground/sign",
        content=body,
        headers={"x-admin-token": ADMIN_TOKEN, "host": host, "content-type": "application/json"},
    )
    for response in (api, sign):
        assert response.status_code == 400, response.text
        assert response.json()["param"] == key.encode("utf-8", "backslashreplace").decode()[:40]


async def test_a_redirect_the_client_cannot_follow_is_a_502_for_an_image_parameter(
    on_fake: tuple[Service, httpx.AsyncClient, AssetHost],
) -> None:
    _, client, host = on_fake
    host.routes["/avatar.png"] = Reply(status=302, headers={"Location": "http:%2F%2Fx"})
    response = await client.get(signed({"title": "t", "avatar": host.url("/avatar.png")}))
    assert response.status_code == 502, response.text
    assert response.json()["param"] == "avatar"
    assert response.headers["cache-control"] == "no-store"


async def test_thousands_of_refused_page_requests_log_one_line(
    on_fake: tuple[Service, httpx.AsyncClient, AssetHost], caplog: pytest.LogCaptureFixture
) -> None:
    service, client, _ = on_fake
    renderer = service.renderer
    assert isinstance(renderer, FakeRenderer)
    # Refused by the page itself, as Chromium's pages refuse them under their policy.
    renderer.page_blocked = [f"http://elsewhere.test/{i}.png" for i in range(5_000)]
    caplog.set_level(logging.INFO, logger="ogproxy.fetcher")
    response = await client.get(signed({"html": "<img src=http://elsewhere.test/0.png>"}))
    assert response.status_code == 422 and "elsewhere.test/0.png" in response.json()["error"]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "ogproxy.fetcher"]
    assert line.startswith("card assets: 5000 refused: ") and line.endswith("; and 4995 more")


# Any code point, lone surrogates included: JSON spells them ("\\ud800"), UTF-8 cannot.
_ANY_TEXT = st.text(max_size=12) | st.builds(
    lambda before, lone, after: before + lone + after,
    st.text(max_size=4),
    st.characters(categories=["Cs"]),
    st.text(max_size=4),
)
_NAMES = st.one_of(
    st.sampled_from(
        ["title", "subtitle", "template", "accentColor", "html", "v", "width", "height",
         "scale", "quality", "palette", "format", "avatar", "logo", "author", "theme", "sig"]
    ),
    _ANY_TEXT,
)  # fmt: skip
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | _ANY_TEXT
    | st.sampled_from(["x", "#abc", "png", "webp", "gradient", "800", "2", "data:image/png;,x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(st.dictionaries(_NAMES, _VALUES, max_size=6))
def test_any_json_key_and_value_is_an_answer_never_a_500(
    app_thread: AppThread, body: dict[str, Any]
) -> None:
    """POST /v1/og-image: a card (200), or a clear 4xx naming what is wrong, in time."""
    raw = json.dumps(body).encode()  # NaN and Infinity too, as JSON.parse-lenient senders do
    headers = [(b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")]
    started = time.monotonic()
    status, answer = app_thread.request("/v1/og-image", b"", headers, body=raw)
    assert time.monotonic() - started < 10
    assert status == 200 or 400 <= status < 500 or status in (502, 503, 504), (status, raw[:200])
    if status != 200:
        error = json.loads(answer)
        assert error["status"] == status and error["error"], error
