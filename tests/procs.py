"""Finding and inspecting the processes a test started, through /proc (bench/harness.py)."""

from __future__ import annotations

from harness import cmdline, descendants, proc_info

__all__ = ["alive", "browsers", "cmdline", "descendants", "zombies"]


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
