"""Running `ogproxy serve` as a real process on loopback, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    tmp: Path, *args: str, env: dict[str, str] | None = None, ready: float = 40
) -> Iterator[Server]:
    """`ogproxy serve` on a free loopback port; stopped (SIGINT, then SIGKILL) on exit."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"serve-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OGPROXY_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ogproxy.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--cache-dir",
                str(tmp / "cache"),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready
        while True:
            assert proc.poll() is None, server.output()
            try:
                if httpx.get(server.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def metric(server: Server, sample: str) -> float:
    """The value of one sample line (name and labels exactly as exposed), 0 if absent."""
    for line in httpx.get(server.base + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0
