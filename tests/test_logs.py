"""The log stream of a real `ogproxy serve`, as an operator's log shipper reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support.cards import SECRET, signed
from tests.support.servers import serve

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Only in the query: the signature and the card's text must never reach the log.
PRIVATE_TITLE = "Private title 7f3a9c"
CRAWLER = 'Mozilla/5.0 (compatible; Twitterbot/1.0) "quoted"'


def _requests(base: str) -> dict[str, str]:
    """A miss, a hit, a bad signature and a bad parameter; their X-Request-IDs by name."""
    url = signed({"title": PRIVATE_TITLE}, base=base + "/og.png")
    headers = {"User-Agent": CRAWLER, "X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    ids = {}
    for name, target, status in (
        ("miss", url, 200),
        ("hit", url, 200),
        ("forged", url[:-3] + "AAA", 403),
        ("invalid", signed({"title": "x", "accentColor": "nope"}, base=base + "/og.png"), 400),
    ):
        response = httpx.get(target, headers=headers, timeout=60)
        assert response.status_code == status, name
        ids[name] = response.headers["x-request-id"]
    assert len(set(ids.values())) == len(ids)
    return ids


def test_every_line_is_json_and_the_access_line_says_who_asked(tmp_path: Path) -> None:
    with serve(tmp_path, env={"OGPROXY_SECRET": SECRET}, fake=True) as server:
        ids = _requests(server.base)
    output = server.output()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    for line in lines:
        assert TIME.match(line["time"]) and line["level"] in {"INFO", "WARNING", "ERROR"}, line
        assert line["logger"], line
    # uvicorn speaks through the same handler; pyvips and httpx say nothing at INFO.
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert not [line for line in lines if line["logger"].split(".")[0] in {"pyvips", "httpx"}]

    access = {line["request_id"]: line for line in lines if line["logger"] == "ogproxy.access"}
    for name, status, cache in (("miss", 200, "MISS"), ("hit", 200, "HIT"), ("forged", 403, None)):
        line = access[ids[name]]
        assert (line["status"], line["cache"], line["path"]) == (status, cache, "/og.png")
        # The peer (loopback) is a trusted proxy by default: the client is the address
        # it appended last, not the one the client could have written itself.
        assert line["client"] == "203.0.113.7"
        assert line["user_agent"] == CRAWLER
    assert access[ids["miss"]]["render_ms"] > 0 and len(access[ids["miss"]]["key"]) == 12
    # The 403's reason is logged once, tied to its request.
    # (Matched on "-> 403", not "403": uvicorn's start-up line names the port, which may
    # hold those digits.)
    (reason,) = [line for line in lines if "-> 403" in line.get("message", "")]
    assert reason["request_id"] == ids["forged"] and "signature" in reason["message"]
    assert PRIVATE_TITLE.split()[-1] not in output and "sig=" not in output
    assert SECRET not in output


def test_text_format_and_untrusted_forwarded_for(tmp_path: Path) -> None:
    env = {
        "OGPROXY_SECRET": SECRET,
        "OGPROXY_LOG_FORMAT": "text",
        "OGPROXY_TRUSTED_PROXIES": "10.0.0.0/8",
    }
    with serve(tmp_path, env=env, fake=True) as server:
        ids = _requests(server.base)
    lines = [line for line in server.output().splitlines() if line.strip()]
    for line in lines:
        stamp, level, _ = line.split(" ", 2)
        assert TIME.match(stamp) and level in {"INFO", "WARNING", "ERROR"}, line
    (hit,) = [line for line in lines if f"request_id={ids['hit']}" in line]
    assert ' ogproxy.access: GET "/og.png" 200 HIT ' in hit
    # Loopback is not in 10.0.0.0/8: X-Forwarded-For is ignored, the peer is the client.
    assert "client=127.0.0.1 " in hit and "203.0.113.7" not in server.output()
    assert f"user_agent={json.dumps(CRAWLER)}" in hit
    assert PRIVATE_TITLE.split()[-1] not in server.output()


def test_a_text_access_line_cannot_be_split_by_the_path(tmp_path: Path) -> None:
    env = {"OGPROXY_SECRET": SECRET, "OGPROXY_LOG_FORMAT": "text"}
    forged = "2000-01-01T00:00:00.000Z ERROR ogproxy: forged"
    with serve(tmp_path, env=env, fake=True) as server:
        for path in ("/og.png%0A" + forged.replace(" ", "%20"), "/x%0D%1B[2J%E2%80%A8y%C2%85z"):
            assert httpx.get(server.base + path, timeout=10).status_code == 404
        # Header bytes 0x80-0xff arrive as Latin-1: U+0085 ends a line, U+009B is a CSI.
        agent = {b"User-Agent": b"crawler\x9b31m \x85" + forged.encode()}
        assert httpx.get(server.base + "/healthz", headers=agent, timeout=10).status_code == 200
        httpx.get(server.base + "/healthz", timeout=5)  # flushes the access lines
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith(forged[:10])], lines
    for line in lines:
        assert TIME.match(line.split(" ", 1)[0]) and "\r" not in line and "\x1b" not in line
        assert not {"\u2028", "\x85", "\x9b"} & set(line), line
    assert len(server.output().splitlines()) == len(server.output().split("\n")) - 1
    assert any(f'GET "/og.png\\n{forged.split()[0]}' in line for line in lines)  # still readable
