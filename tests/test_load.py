"""A short, bounded load test on loopback: warm cards under many connections, zero errors.

The full one (20,000 requests over 64 connections) is in `make bench`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.cards import SECRET, signed
from tests.support.servers import serve
from tests.support.wrk import cycle_script, wrk_until_markers

pytestmark = pytest.mark.browser


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_many_connections_on_warm_cards_get_no_errors(tmp_path: Path) -> None:
    requests, threads = 3000, 2
    markers = tmp_path / "markers"
    markers.mkdir()
    with serve(tmp_path, env={"OGPROXY_SECRET": SECRET}) as server:
        base = server.base + "/og.png"
        urls = [signed({"title": f"Load card {i}"}, base=base) for i in range(20)]
        with httpx.Client(timeout=30) as client:
            assert all(client.get(url).status_code == 200 for url in urls)  # warm
        paths = ",\n".join(f"   [==[{u.removeprefix(server.base)}]==]" for u in urls)
        script = tmp_path / "cycle.lua"
        script.write_text(cycle_script(paths, -(-requests // threads), markers))
        result = wrk_until_markers(server.base + "/", threads, 64, script, markers, 120)
    assert result["requests"] >= requests
    assert result["errors"] == 0 and result["non_2xx"] == 0 and result["socket_errors"] == 0
