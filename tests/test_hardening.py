"""Hostile and oversized requests, fuzzed: never a 500, never a render without a signature."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SECRET, make_settings, signed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from ogproxy.app import create_app
from ogproxy.signing import canonical_query, parse_query, signature

pytestmark = pytest.mark.anyio


class AppThread:
    """The real app (real Chromium) on an event loop in a thread, called with raw ASGI scopes."""

    def __init__(self, tmp: Path) -> None:
        self.app = create_app(make_settings(tmp))
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
        return int(self.app.state.cards.renderer.renders)

    def request(
        self, path: str, query: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, bytes]:
        return asyncio.run_coroutine_threadsafe(
            self._request(path, query, headers or []), self.loop
        ).result(60)

    async def _request(
        self, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes]:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"fuzz"), *headers],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        status, body = 0, b""

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                body += message.get("body", b"")

        await self.app(scope, receive, send)
        return status, body


@pytest.fixture(scope="module")
def app_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppThread]:
    runner = AppThread(tmp_path_factory.mktemp("fuzz"))
    yield runner
    runner.close()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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


@pytest.mark.browser
def test_real_http_parser_refuses_garbage_without_500(tmp_path: Path) -> None:
    from servers import serve

    with serve(tmp_path, env={"OGPROXY_SECRET": SECRET}) as server:
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
