"""What Linux's /proc says of a process: its state and parent, CPU time, memory, command
line, children and threads.

The one reader of /proc for the package (browser.py caps Chromium's renderers,
priority.py renices them), the tests and the bench. Every function answers for a
process that is gone, or a /proc that is not there, with nothing (None, "", []): a
process can end between listing it and reading it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def available() -> bool:
    """Whether this system has a /proc to read (Linux)."""
    return PROC.is_dir()


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` that ogproxy uses."""

    state: str  # "R", "S", ...; "Z" (or "X"): exited, waiting to be reaped
    ppid: int
    utime: int  # clock ticks of user CPU time
    stime: int  # clock ticks of system CPU time
    starttime: int  # with the pid, names one process even if the pid is reused

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")

    @property
    def cpu_seconds(self) -> float:
        return (self.utime + self.stime) / os.sysconf("SC_CLK_TCK")


def stat(pid: int | str) -> Stat | None:
    """``/proc/<pid>/stat``; None if the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
        # The command name is in parentheses and may hold spaces and ")": the fields
        # start after the last ")".
        fields = raw[raw.rindex(")") + 2 :].split()
        return Stat(fields[0], int(fields[1]), int(fields[11]), int(fields[12]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def pids() -> list[int]:
    """Every process now."""
    try:
        return [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]
    except OSError:
        return []


def tree() -> dict[int, list[int]]:
    """Each parent's children, zombies included (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for pid in pids():
        if (info := stat(pid)) is not None:
            children.setdefault(info.ppid, []).append(pid)
    return children


def children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` now."""
    return tree().get(parent, [])


def descendants(root: int) -> list[int]:
    """Every descendant of ``root`` (zombies included), through parent links."""
    links = tree()
    found, todo = [], [root]
    while todo:
        for child in links.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int | str) -> str:
    """The command line, its arguments joined by spaces; "" if the process is gone.

    Chromium's child processes rewrite theirs as one space-separated string, so this
    spelling fits both kinds.
    """
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def args(pid: int | str) -> list[str]:
    """The command line's arguments (split at spaces, see ``cmdline``)."""
    return cmdline(pid).split()


def environ(pid: int | str) -> dict[str, str]:
    """The environment the process started with; {} if it is gone or not ours to read."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def kib(pid: int | str, field: str, file: str = "status") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/<file>`` (``VmRSS`` of status, ``Pss`` of
    smaps_rollup); None if the process is gone or the file has no such field."""
    try:
        for line in (PROC / str(pid) / file).read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None


def owner(pid: int | str) -> tuple[int, int] | None:
    """The real user and group ids of the process; None if it is gone."""
    try:
        fields = dict(
            line.split(":", 1) for line in (PROC / str(pid) / "status").read_text().splitlines()
        )
        return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def rss_bytes(pid: int | str) -> int:
    """Resident memory of the process; 0 if it is gone."""
    return (kib(pid, "VmRSS") or 0) * 1024


def thread_ids(pid: int | str = "self") -> list[int]:
    """The threads of the process (of this one by default)."""
    try:
        return [int(tid) for tid in os.listdir(PROC / str(pid) / "task")]
    except OSError:
        return []


def thread_name(pid: int | str, tid: int) -> str:
    """A thread's name (its ``comm``, at most 15 characters); "" if it is gone."""
    try:
        return (PROC / str(pid) / "task" / str(tid) / "comm").read_text().rstrip("\n")
    except OSError:
        return ""
