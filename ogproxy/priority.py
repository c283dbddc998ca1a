"""Renders yield the CPU to cache hits.

On a small machine Chromium and the image encoder compete with the event loop for the
same cores: a hit then waits for CPU, not for a lock. Linux niceness is per thread and
inherited by new threads and processes, so renicing every thread of the browser
processes (and the encoder threads) once makes all later render work background work.

Chromium sets some of its threads' priorities itself, which only works with
CAP_SYS_NICE: running as root it would undo the renice. So, when root, the capability
is dropped from the bounding set of the processes this one starts (never from this one).
"""

from __future__ import annotations

import contextlib
import os
import threading

from . import procfs

RENDER_NICE = 10  # 0 is the event loop; 19 is the lowest priority
# Untrusted cards' driver and browser yield to built-in renders too (a third of their CPU
# share when both want it): a card that burns its render timeout slows the others less.
UNTRUSTED_NICE = 15
_local = threading.local()


def _renice(pid: int | str, named: str = "", nice: int = RENDER_NICE) -> None:
    """Every thread of ``pid`` (or only those whose name starts with ``named``), to ``nice``
    or lower: a thread already lower stays where it is."""
    for tid in procfs.thread_ids(pid):
        if not named or procfs.thread_name(pid, tid).startswith(named):
            with contextlib.suppress(OSError):
                if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)


_PR_CAPBSET_DROP = 24
_CAP_SYS_NICE = 23


def keep_children_from_raising_priority() -> None:
    """Children started from now on cannot raise their priority back (no CAP_SYS_NICE)."""
    if os.name != "posix" or not procfs.available():
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_CAPBSET_DROP, _CAP_SYS_NICE, 0, 0, 0)


def lower_children(pids: list[int] | None = None, nice: int = RENDER_NICE) -> None:
    """Renice every thread of every process below this one (Playwright's drivers, Chromium),
    or of ``pids`` and the processes below them."""
    if not procfs.available():
        return
    # Each process's children are listed after it is reniced: one it started before
    # is found, one it starts after inherits the niceness.
    todo = procfs.children(os.getpid()) if pids is None else list(pids)
    while todo:
        pid = todo.pop()
        _renice(pid, nice=nice)
        todo.extend(procfs.children(pid))


def lower_this_thread() -> None:
    """Once per worker thread: the encoding it does waits for hits, not the other way."""
    if not getattr(_local, "lowered", False):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICE)
        _local.lowered = True


_threads_seen = 0


def lower_library_threads(named: str = "libvips") -> None:
    """Lower the helper threads a library started on its own in this process (libvips keeps
    a pool of workers, some started before any of our threads was lowered). Cheap when no
    thread was added since the last call."""
    global _threads_seen
    count = len(procfs.thread_ids())
    if count != _threads_seen:
        _threads_seen = count
        _renice("self", named)
