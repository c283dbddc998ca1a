"""Real processes on loopback, for the tests and the bench: ports, readiness, stop.

One copy of what both need to start a server, wait for it, find what it spawned (in
/proc, through ogproxy/procfs.py) and end all of it (Playwright starts each Chromium in
its own session, so a process group is not enough).
"""

from __future__ import annotations

import contextlib
import os
import signal
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ogproxy import procfs

HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def running(pid: int, starttime: int | None = None) -> bool:
    """``pid`` is running (not a zombie) and, given ``starttime``, is still that process."""
    info = procfs.stat(pid)
    return info is not None and info.running and starttime in (None, info.starttime)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_http(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; RuntimeError with the log's tail if it exits
    first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: exited with {proc.returncode}:\n" + tail(log))
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n" + tail(log))


def stop_tree(
    proc: subprocess.Popen[bytes],
    sig: signal.Signals = signal.SIGTERM,
    *,
    group: bool = True,
    grace_s: float = 15.0,
) -> None:
    """``sig`` to the process (its group by default), wait, SIGKILL the group; then end
    any descendant that left the group and outlived it.

    Survivors get SIGTERM after 0.3 s and SIGKILL 0.5 s later; exited ones that only
    wait to be reaped (zombies) count as gone.
    """
    tree = [  # snapshot first: orphans get re-parented
        (pid, info.starttime)
        for pid in procfs.descendants(proc.pid)
        if (info := procfs.stat(pid)) is not None and info.running
    ]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for final, wait_s in ((signal.SIGTERM, 0.3), (signal.SIGKILL, 0.5), (None, 2.0)):
        deadline = time.monotonic() + wait_s
        while any(running(*p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.02)
        if final is None:
            break
        for pid, starttime in tree:
            if running(pid, starttime):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, final)


# What a test asks of the processes it started.
def chromium(root: int) -> list[int]:
    """Every Chromium process (browser, renderers, GPU, utilities) below ``root``."""
    return [
        pid
        for pid in procfs.descendants(root)
        if "chrom" in (line := procfs.cmdline(pid)) or "headless_shell" in line
    ]


def browsers(root: int) -> list[int]:
    """Chromium browser (main) processes below ``root``: not its renderer/GPU/zygote children."""
    return [pid for pid in chromium(root) if "--type=" not in procfs.cmdline(pid)]


def zombies(root: int) -> list[int]:
    return [
        pid for pid in procfs.descendants(root) if (info := procfs.stat(pid)) and not info.running
    ]


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (info := procfs.stat(pid)) is not None and info.running]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` (those still there)."""
    return sum(info.cpu_seconds for pid in pids if (info := procfs.stat(pid)) is not None)


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` (those still there)."""
    return sum(procfs.rss_bytes(pid) for pid in pids)


def python_as(setpriv: list[str], env: dict[str, str]) -> list[str] | None:
    """A Python command that runs as another user (``setpriv`` and its options) and imports
    this checkout's ogproxy, or None. Our interpreter may live where only we can enter (a
    home folder): the system's one of the same version then runs our packages."""
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root), str(root / "clients/python"), *site.getsitepackages()]
    )
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/python{version}"):
        command = [*setpriv, python]
        probe = [*command, "-c", "import ogproxy.renderer"]
        done = subprocess.run(probe, env=env, capture_output=True, timeout=60, check=False)
        if done.returncode == 0:
            return command
    return None
