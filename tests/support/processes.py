"""Real processes on loopback, for the tests and the bench: ports, /proc, readiness, stop.

One copy of what both need to start a server, wait for it, find what it spawned and
end all of it (Playwright starts each Chromium in its own session, so a process group
is not enough).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    state: str  # "Z" (or "X"): exited, waiting to be reaped
    starttime: int  # with the pid, names one process even if the pid is reused

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def proc_info(pid: int) -> ProcInfo | None:
    """What /proc says of ``pid``; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return ProcInfo(int(fields[1]), fields[0], int(fields[19]))


def descendants(root: int) -> list[int]:
    """Every descendant of ``root`` (zombies included), through /proc parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := proc_info(int(entry))) is not None:
            children.setdefault(info.ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int, starttime: int | None = None) -> bool:
    """``pid`` is running (not a zombie) and, given ``starttime``, is still that process."""
    info = proc_info(pid)
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
        for pid in descendants(proc.pid)
        if (info := proc_info(pid)) is not None and info.running
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
def browsers(root: int) -> list[int]:
    """Chromium browser (main) processes below ``root``: not its renderer/GPU/zygote children."""
    return [
        pid
        for pid in descendants(root)
        if ("chrom" in cmdline(pid) or "headless_shell" in cmdline(pid))
        and "--type=" not in cmdline(pid)
    ]


def zombies(root: int) -> list[int]:
    return [pid for pid in descendants(root) if (info := proc_info(pid)) and not info.running]


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (info := proc_info(pid)) is not None and info.running]


def chromium(root: int) -> list[int]:
    """Every Chromium process (browser, renderers, GPU, utilities) below ``root``."""
    return [
        pid
        for pid in descendants(root)
        if "chrom" in cmdline(pid) or "headless_shell" in cmdline(pid)
    ]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` (those still there)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}
