"""`ogproxy serve --dev` as a real process on loopback: what a new user does first."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cards import png_image
from tests.support.processes import alive, free_port

pytestmark = pytest.mark.browser


DevServer = tuple[str, "subprocess.Popen[str]", Path]


@pytest.fixture(scope="module")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGPROXY_")}
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ogproxy.cli",
            "serve",
            "--dev",
            "--port",
            str(port),
            "--cache-dir",
            str(tmp / "cache"),
            "--dev-secret-file",
            str(tmp / "dev-secret"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline and proc.poll() is None:
        text = (tmp / "serve.log").read_text()
        if "Uvicorn running" in text:
            break
        time.sleep(0.1)
    match = re.search(r"(http://127\.0\.0\.1:\d+/og\.png\?\S+)", text)
    assert match, text
    try:
        yield match.group(1), proc, tmp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
        log.close()


def test_dev_banner_url_serves_a_card(dev_server: DevServer) -> None:
    url, _, tmp = dev_server
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
        json.loads(line)
        for line in (tmp / "serve.log").read_text().splitlines()
        if line.startswith('{"time"')
    ]
    lines = [line for line in logged if line["logger"] == "ogproxy.access"]
    assert [(line["method"], line["status"], line["cache"]) for line in lines[-2:]] == [
        ("GET", 200, "HIT" if lines[-2].get("render_ms") is None else "MISS"),
        ("HEAD", 200, "HIT"),
    ]
    assert "sig=" not in (tmp / "serve.log").read_text().split("Uvicorn running")[1]


def test_shutdown_leaves_no_browser(dev_server: DevServer) -> None:
    _, proc, _ = dev_server
    children = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert children, "the server should have a browser child process"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    time.sleep(0.5)
    assert not alive(children)
