"""Running `ogproxy serve` as a real process on loopback, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import free_port, stop_tree, wait_http

__all__ = ["Server", "free_port", "serve"]

REPO = Path(__file__).resolve().parents[2]
FAKE_CLI = [sys.executable, "-m", "tests.support.fakecli"]  # `ogproxy` on the fake renderer


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready: float = 40,
    program: list[str] | None = None,
    cwd: Path | None = None,
    fake: bool = False,
) -> Iterator[Server]:
    """`ogproxy serve` on a free loopback port; stopped (SIGINT, then SIGKILL) on exit.

    ``program`` runs another installation's ``ogproxy`` (default: this one's, as a module);
    ``fake``: this one's on the fake renderer (no Chromium), from the repository's root.
    """
    if fake:
        program, cwd = FAKE_CLI, REPO
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"serve-{port}.log"
    # A clean environment, but the machine's browser choice (so a fast run with
    # OGPROXY_CHROMIUM=/nonexistent proves no server it starts has a browser).
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OGPROXY_") or k == "OGPROXY_CHROMIUM"
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(program or [sys.executable, "-m", "ogproxy.cli"]),
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
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_http(proc, server.base + "/healthz", log, ready)
        yield server
    finally:  # Ctrl-C, as a user stops it; then whatever is left, browsers included
        stop_tree(proc, signal.SIGINT, group=False, grace_s=20)


def metric(server: Server, sample: str) -> float:
    """The value of one sample line (name and labels exactly as exposed), 0 if absent."""
    for line in httpx.get(server.base + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0
