"""Finding and inspecting the processes a test started, through /proc."""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> tuple[int, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]  # ppid, state


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            children.setdefault(info[0], []).append(int(entry))
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


def browsers(root: int) -> list[int]:
    """Chromium browser (main) processes below ``root``: not its renderer/GPU/zygote children."""
    return [
        pid
        for pid in descendants(root)
        if ("chrom" in cmdline(pid) or "headless_shell" in cmdline(pid))
        and "--type=" not in cmdline(pid)
    ]


def zombies(root: int) -> list[int]:
    return [pid for pid in descendants(root) if (info := _stat(pid)) and info[1] == "Z"]


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (info := _stat(pid)) is not None and info[1] != "Z"]


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
