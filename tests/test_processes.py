"""Whole server processes: several workers on one cache, graceful shutdown."""

from __future__ import annotations

import concurrent.futures
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from ogproxy import procfs
from ogproxy.config import TEMPLATES_DIR
from tests.support.cards import SECRET, png_image, signed
from tests.support.processes import alive
from tests.support.servers import serve
from tests.test_faults import SLOW

pytestmark = pytest.mark.browser


ENV = {"OGPROXY_SECRET": SECRET}


def test_workers_share_the_cache_and_render_a_key_once(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2", env=ENV) as server:
        url = signed({"title": "Rendered once across workers"}, base=server.base + "/og.png")

        def fetch(_: int) -> httpx.Response:
            with httpx.Client(timeout=30) as client:  # one connection each: both workers
                return client.get(url)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(fetch, range(16)))
        assert {r.status_code for r in responses} == {200}
        assert [r.headers["x-cache"] for r in responses].count("MISS") == 1
        assert len({r.content for r in responses}) == 1
        distinct = [
            signed({"title": f"Distinct {i}"}, base=server.base + "/og.png") for i in range(6)
        ]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda u: httpx.get(u, timeout=30), distinct))
        assert all(
            r.status_code == 200 and png_image(r.content).size == (1200, 630) for r in results
        )


def test_graceful_shutdown_finishes_in_flight_and_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder)
    (folder / "slow.html").write_text(SLOW)
    with serve(tmp_path, "--templates-dir", str(folder), env=ENV) as server:
        children = procfs.descendants(server.proc.pid)
        assert children
        url = signed({"title": "In flight", "template": "slow"}, base=server.base + "/og.png")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, url, timeout=30)
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            response = pending.result()
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(response.content))
        # uvicorn shuts down cleanly, then re-raises the signal it caught (exit by SIGTERM).
        assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.output()
        time.sleep(0.5)
        assert not alive(children), "processes left behind"
