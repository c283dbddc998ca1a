"""`ogproxy serve --dev` as a real process on loopback: what a new user does first."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from ogproxy import procfs
from tests.support.cards import png_image
from tests.support.processes import alive
from tests.support.servers import Server, serve


def dev_banner(server: Server) -> str:
    """The signed example URL `serve --dev` prints once it is up."""
    match = re.search(r"(http://127\.0\.0\.1:\d+/og\.png\?\S+)", server.output())
    assert match, server.output()
    return match.group(1)


def test_dev_banner_url_serves_a_card(tmp_path: Path) -> None:
    secret = ("--dev-secret-file", str(tmp_path / "dev-secret"))
    with serve(tmp_path, "--dev", *secret, fake=True) as server:
        url = dev_banner(server)
        assert (tmp_path / "dev-secret").exists()
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert png_image(response.content).size == (1200, 630)
        head = httpx.head(url, timeout=30)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(response.content))
        assert head.headers["x-cache"] == "HIT"
        assert "server" not in head.headers
        time.sleep(1.5)  # access lines are written in batches, at least every second
        log = server.output()
    logged = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    lines = [line for line in logged if line["logger"] == "ogproxy.access"]
    assert [(line["method"], line["status"], line["cache"]) for line in lines[-2:]] == [
        ("GET", 200, "MISS"),
        ("HEAD", 200, "HIT"),
    ]
    assert "sig=" not in log.split("Uvicorn running")[1]


@pytest.mark.browser
def test_shutdown_leaves_no_browser(tmp_path: Path) -> None:
    secret = ("--dev-secret-file", str(tmp_path / "dev-secret"))
    with serve(tmp_path, "--dev", *secret) as server:
        proc = server.proc
        children = procfs.children(proc.pid)
        assert children, "the server should have a browser child process"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    time.sleep(0.5)
    assert not alive(children)


@pytest.mark.browser
def test_ctrl_c_stops_cleanly_within_a_second(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group. Playwright's
    driver (Node) died of it while the server was still closing its browsers, and
    Playwright logged `ERROR asyncio: Future exception was never retrieved ... Connection
    closed while reading from the driver`. Only the server may get it: it stops the rest."""
    secret = ("--dev-secret-file", str(tmp_path / "dev-secret"))
    with serve(tmp_path, "--dev", *secret, "--log-format", "text") as server:
        proc = server.proc
        children = procfs.children(proc.pid)
        assert children, "the server should have started Playwright's driver"
        assert all(os.getpgid(pid) != proc.pid for pid in alive(children))
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
        assert proc.wait(timeout=20) == 0
        seconds = time.monotonic() - started
        output = server.output()
    assert "ERROR" not in output and "Traceback" not in output, output
    assert "Finished server process" in output
    assert seconds < 1.0, f"{seconds:.2f} s to stop"
