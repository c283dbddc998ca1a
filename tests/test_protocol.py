"""Request heads are bounded at the socket, in bytes and in time, on a real server process
(the fake renderer behind it: the subject is uvicorn and the protocol, not Chromium)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from ogproxy.protocol import MAX_HEAD_BYTES
from tests.support.cards import SECRET, signed
from tests.support.processes import cpu_seconds
from tests.support.servers import Server, serve

API_KEY = "api-key-0123456789abcdef"
HEAD_TIMEOUT = 1.0  # seconds (OGPROXY_HEAD_TIMEOUT), short so the test waits little


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "OGPROXY_SECRET": SECRET,
        "OGPROXY_API_KEYS": API_KEY,
        "OGPROXY_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
    }
    with serve(tmp_path_factory.mktemp("protocol"), env=env, fake=True) as running:
        yield running


def _port(server: Server) -> int:
    return int(server.base.rsplit(":", 1)[1])


def _send_huge_header(port: int, total: int) -> tuple[int, bytes]:
    """Stream one header of ``total`` bytes; return how much went out and the reply."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"v" * 65536
        try:
            while sent < total:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection: what we want
            pass
        try:
            reply = conn.recv(200)
        except OSError:
            reply = b""
    return sent, reply


def test_a_huge_header_is_cut_off_at_the_socket(server: Server) -> None:
    cpu_before = cpu_seconds([server.proc.pid])
    for _ in range(4):
        sent, reply = _send_huge_header(_port(server), 32 * 2**20)
        # The kernel buffers a few MiB of what we send before the close is seen here.
        assert sent < 8 * 2**20, f"server read {sent} bytes of one header"
        assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply
    assert cpu_seconds([server.proc.pid]) - cpu_before < 1.0
    assert httpx.get(server.base + "/healthz", timeout=5).status_code == 200


def test_heads_up_to_the_limit_and_bodies_beyond_it_still_work(server: Server) -> None:
    headers = {f"x-h{i}": "v" * 280 for i in range(50)}  # ~14 KiB of headers
    assert httpx.get(server.base + "/healthz", headers=headers, timeout=5).status_code == 200
    big = {"title": "A body larger than any head", "subtitle": "s", "html": "x" * 400_000}
    response = httpx.post(
        server.base + "/v1/og-image", json=big, headers={"x-api-key": API_KEY}, timeout=30
    )
    assert response.status_code in (200, 400, 422), response.text[:200]
    assert MAX_HEAD_BYTES < 400_000


def _closed_by_peer(conn: socket.socket) -> bool:
    try:
        return conn.recv(100) == b""
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def test_slow_heads_are_closed_after_the_head_timeout(server: Server) -> None:
    port = _port(server)
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    # After one answered request, blank lines: the parser skips them without starting a
    # request, and they cancel the keep-alive timer (these stayed open for ever).
    blank = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    for conn in blank:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"\r\n\r\nok"):  # the whole answer, so none is left unread
            reply += conn.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200")
        conn.sendall(b"\r\n")
    started = time.monotonic()
    for conn in slow:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    while time.monotonic() - started < HEAD_TIMEOUT + 2:  # the sweep runs once a second
        time.sleep(0.5)
        for conn, drip in [*((c, b"X-Drip: 1\r\n") for c in slow), *((c, b"\r\n") for c in blank)]:
            with contextlib.suppress(OSError):  # a line at a time, never a whole head
                conn.sendall(drip)
    everyone = [*slow, *silent, *blank]
    for conn in everyone:
        conn.settimeout(0.05)
    open_by_kind = {
        kind: sum(not _closed_by_peer(conn) for conn in conns)
        for kind, conns in (("dripping", slow), ("silent", silent), ("blank lines", blank))
    }
    for conn in everyone:
        conn.close()
    assert sum(open_by_kind.values()) == 0, f"still open: {open_by_kind}"
    # Meanwhile, and after, ordinary requests are answered.
    good = signed({"title": "After the slowloris"}, base=server.base + "/og.png")
    assert httpx.get(good, timeout=30).status_code == 200
