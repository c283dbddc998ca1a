"""The server's log on a real process: one line per event, whatever the request holds."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from ogproxy.accesslog import AccessLine
from tests.support.cards import SECRET, signed
from tests.support.servers import Server, serve

API_KEY = "api-key-0123456789abcdef"
# Short enough to survive the 40 characters of a parameter name that an error repeats.
FORGED = "2000-01-01 00:00:00,000 ERROR ogproxy:"
# Every line the server writes: a JSON line (the default for every logger), a text line
# (OGPROXY_LOG_FORMAT=text) or a traceback's continuation.
LINE = re.compile(r"^(\{|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z |  \| |$)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OGPROXY_SECRET": SECRET, "OGPROXY_API_KEYS": API_KEY}
    with serve(tmp_path_factory.mktemp("logs"), env=env, fake=True) as running:
        yield running


def _lines(server: Server) -> list[str]:
    httpx.get(server.base + "/healthz", timeout=5)  # the access log is flushed every second
    return server.output().splitlines()


def test_a_json_key_with_newlines_cannot_forge_a_log_line(server: Server) -> None:
    for key in (f"x\n{FORGED}", f"x\r{FORGED}", f"x\u2028{FORGED}", f"\x1b[2J\n{FORGED}"):
        response = httpx.post(
            server.base + "/v1/og-image",
            json={"title": "t", key: "1"},
            headers={"x-api-key": API_KEY},
            timeout=10,
        )
        assert response.status_code == 400
    time.sleep(1.2)
    lines = _lines(server)
    assert not [line for line in lines if line.startswith(FORGED[:10])]
    assert not [line for line in lines if not LINE.match(line)], lines
    assert any("x\\n" + FORGED in line for line in lines)  # escaped, still readable


def test_every_line_is_a_whole_event(server: Server) -> None:
    url = signed({"title": "Logged"}, base=server.base + "/og.png")
    assert httpx.get(url, timeout=30).status_code == 200
    assert httpx.get(server.base + "/og.png%0Aforged?x=1", timeout=5).status_code == 404
    # U+0085 (NEL) and U+009B (CSI) break a line for many readers, like U+2028.
    assert httpx.get(server.base + "/og.png%C2%85%C2%9B%E2%80%A8", timeout=5).status_code == 404
    agent = {b"User-Agent": b"crawler\x85\x9b"}  # header bytes arrive as Latin-1
    assert httpx.get(server.base + "/healthz", headers=agent, timeout=5).status_code == 200
    lines = _lines(server)
    assert not [line for line in lines if not LINE.match(line)], lines
    assert not [line for line in lines if {"\x85", "\x9b", "\x7f", "\u2028"} & set(line)]


def test_a_bad_signature_flood_is_logged_sampled_without_tracebacks(server: Server) -> None:
    url = signed({"title": "Flooded"}, base=server.base + "/og.png")
    bad = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i in range(600):
            response = client.get(bad if i % 2 else url.split("&sig=")[0])
            assert response.status_code == 403
    seconds = time.monotonic() - started
    time.sleep(1.2)
    lines = [line for line in _lines(server) if "-> 403" in line]
    assert 1 <= len(lines) <= seconds + 2, len(lines)  # about one a second, not one each
    assert "more" in lines[-1] or len(lines) == 1
    assert "Traceback" not in server.output()


def test_a_text_line_quotes_the_path_so_it_cannot_pose_as_other_fields() -> None:
    spoof = '/og.png 200 HIT 9B 0.1ms client=203.0.113.7 request_id=x "\\'
    line = AccessLine("GET", spoof, 404, None, 0, 0.1, "198.51.100.9", "bot", "id-1").text()
    start = line.index(" GET ") + len(" GET ")
    path, end = json.JSONDecoder().raw_decode(line, start)
    assert path == spoof
    assert line[end:].startswith(" 404 - 0B 0.1ms client=198.51.100.9 request_id=id-1 ")
