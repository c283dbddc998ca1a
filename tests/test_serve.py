"""`ogproxy serve --dev` as a real process on loopback: what a new user does first."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ogproxy import procfs
from tests.support.cards import png_image
from tests.support.processes import alive
from tests.support.servers import Server, serve

pytestmark = pytest.mark.browser


DevServer = tuple[str, Server, Path]


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("serve")
    with serve(tmp, "--dev", "--dev-secret-file", str(tmp / "dev-secret")) as server:
        match = re.search(r"(http://127\.0\.0\.1:\d+/og\.png\?\S+)", server.output())
        assert match, server.output()
        yield match.group(1), server, tmp


def test_dev_banner_url_serves_a_card(dev_server: DevServer) -> None:
    url, server, tmp = dev_server
    assert (tmp / "dev-secret").exists()
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert png_image(response.content).size == (1200, 630)
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(response.content))
    assert head.headers["x-cache"] == "HIT"
    assert "server" not in head.headers
    time.sleep(1.5)  # access lines are written in batches, at least every second
    logged = [
        json.loads(line) for line in server.output().splitlines() if line.startswith('{"time"')
    ]
    lines = [line for line in logged if line["logger"] == "ogproxy.access"]
    assert [(line["method"], line["status"], line["cache"]) for line in lines[-2:]] == [
        ("GET", 200, "HIT" if lines[-2].get("render_ms") is None else "MISS"),
        ("HEAD", 200, "HIT"),
    ]
    assert "sig=" not in server.output().split("Uvicorn running")[1]


def test_shutdown_leaves_no_browser(dev_server: DevServer) -> None:
    proc = dev_server[1].proc
    children = procfs.children(proc.pid)
    assert children, "the server should have a browser child process"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    time.sleep(0.5)
    assert not alive(children)
