"""A short, bounded load test on loopback: warm cards under many connections, zero errors.

The full one (20,000 requests over 64 connections) is in `make bench`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import serve_bench  # bench/ is on the path (conftest.py)

pytestmark = pytest.mark.browser


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_many_connections_on_warm_cards_get_no_errors(tmp_path: Path) -> None:
    result = serve_bench.load_zero_errors(tmp_path, requests=3000, connections=64)
    assert result["total_requests"] >= 3000
    assert result["errors"] == 0 and result["non_2xx"] == 0 and result["socket_errors"] == 0
