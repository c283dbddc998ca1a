"""A real Caddy (deploy/Caddyfile.local) in front of two real ogproxy instances."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.cards import SECRET, png_image, signed
from tests.support.servers import Server, free_port, serve

ROOT = Path(__file__).resolve().parent.parent
Fleet = tuple[str, list[Server]]

pytestmark = [
    pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed"),
    pytest.mark.browser,
]


def counter(server: Server, name: str) -> int:
    text = httpx.get(server.base + "/metrics", timeout=10).text
    found = re.search(rf"^ogproxy_{name}_total (\S+)", text, re.M)
    assert found is not None, text
    return int(float(found.group(1)))


def renders(server: Server) -> int:
    return counter(server, "renders")


def first_renders(
    client: httpx.Client, base: str, label: str
) -> tuple[list[str], list[httpx.Response]]:
    """12 distinct cards through Caddy, each a MISS rendered on one instance."""
    urls = [signed({"title": f"{label} {i}"}, base=base + "/og.png") for i in range(12)]
    first = [client.get(u) for u in urls]
    assert all(r.status_code == 200 and r.headers["x-cache"] == "MISS" for r in first)
    return urls, first


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[str, list[Server]]]:
    with ExitStack() as stack:
        servers = [
            stack.enter_context(serve(tmp_path / name, env={"OGPROXY_SECRET": SECRET}))
            for name in ("a", "b")  # serve() makes each instance's folder
        ]
        port = free_port()
        env = {
            **os.environ,
            "CADDY_PORT": str(port),
            "OGPROXY_UPSTREAMS": " ".join(s.base.removeprefix("http://") for s in servers),
        }
        log = (tmp_path / "caddy.log").open("wb")
        caddy = subprocess.Popen(
            [
                "caddy",
                "run",
                "--config",
                str(ROOT / "deploy/Caddyfile.local"),
                "--adapter",
                "caddyfile",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert caddy.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "caddy.log"
                ).read_text()
                time.sleep(0.1)
            yield base, servers
        finally:
            caddy.send_signal(signal.SIGTERM)
            caddy.wait(timeout=10)
            log.close()


def test_caddy_balances_by_uri_passes_headers_and_fails_over(fleet: Fleet) -> None:
    base, servers = fleet
    with httpx.Client(timeout=30) as client:
        urls, first = first_renders(client, base, "Fleet card")
        # Each URL sticks to one instance: asked again, it is a hit there (the other
        # instance has its own cache and would answer MISS).
        for _ in range(2):
            again = [client.get(u) for u in urls]
            assert [r.headers["x-cache"] for r in again] == ["HIT"] * len(urls)
            assert [r.content for r in again] == [r.content for r in first]
        # Each card rendered exactly once across the fleet, and both instances took a share.
        counts = [renders(s) for s in servers]
        assert sum(counts) == len(urls) and min(counts) > 0, counts

        # Headers pass through unchanged.
        direct = httpx.get(urls[0].replace(base, servers[0].base), timeout=30)
        proxied = client.get(urls[0])
        for name in (
            "content-type",
            "content-length",
            "etag",
            "cache-control",
            "cdn-cache-control",
            "accept-ranges",
        ):
            assert proxied.headers[name] == direct.headers[name], name
        assert "vary" not in proxied.headers
        part = client.get(urls[0], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == first[0].content[:10]
        assert client.get(base + "/metrics").status_code == 404  # not exposed at the edge

        # Stop one instance: its URLs move to the other, with no error.
        victim = servers[0]
        victim.proc.send_signal(signal.SIGTERM)
        victim.proc.wait(timeout=20)
        after = [client.get(u) for u in urls]
        assert [r.status_code for r in after] == [200] * len(urls)
        assert [r.headers["etag"] for r in after] == [r.headers["etag"] for r in first]
        assert all(png_image(r.content).size == (1200, 630) for r in after)
        assert renders(servers[1]) == len(urls)  # it rendered the victim's share once more


def test_instance_whose_browser_died_comes_back_into_rotation(fleet: Fleet) -> None:
    from tests.support.processes import browsers

    base, servers = fleet
    with httpx.Client(timeout=30) as client:
        urls, first = first_renders(client, base, "Back in rotation")
        counts = [renders(s) for s in servers]
        assert min(counts) > 0, counts

        # Kill one instance's Chromium and send no cards: Caddy's /readyz probes take
        # the instance out, and the probes alone must bring its browser back.
        victim = servers[0]
        for pid in browsers(victim.proc.pid):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while counter(victim, "browser_restarts") == 0:
            assert time.monotonic() < deadline, "the browser was never relaunched"
            time.sleep(0.2)
        time.sleep(2.5)  # two more probes (1 s apart): Caddy sees it healthy again

        # Every card is still a hit where it was rendered: nothing moved to the other
        # instance (which would render it again).
        again = [client.get(u) for u in urls]
        assert [r.headers["x-cache"] for r in again] == ["HIT"] * len(urls)
        assert [r.content for r in again] == [r.content for r in first]
        assert [renders(s) for s in servers] == counts
