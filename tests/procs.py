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
