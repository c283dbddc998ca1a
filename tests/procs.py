"""Finding and inspecting the processes a test started, through /proc (bench/harness.py)."""

from __future__ import annotations

import os
from pathlib import Path

from harness import cmdline, descendants, proc_info

__all__ = [
    "alive",
    "browsers",
    "chromium",
    "cmdline",
    "cpu_seconds",
    "descendants",
    "environ",
    "rss_bytes",
    "zombies",
]


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
