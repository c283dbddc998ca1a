"""Reading /proc: real processes of this test, one of them with a name that looks like
the end of the stat line's command field."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ogproxy import procfs

pytestmark = pytest.mark.skipif(not procfs.available(), reason="needs Linux's /proc")

SLEEP = "import time; time.sleep(30)"


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    # A command name with ") " in it: the stat fields start after the last ")".
    odd = tmp_path / "x) S 1 (y"
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen(
        [str(odd), "-c", SLEEP, "two words"], env={**os.environ, "PROCFS_TEST": "a=b"}
    )
    deadline = time.monotonic() + 10
    while "two words" not in procfs.cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_stat_of_a_process_with_parentheses_in_its_name(child: subprocess.Popen[bytes]) -> None:
    info = procfs.stat(child.pid)
    assert info is not None
    assert info.ppid == os.getpid()
    assert info.running and info.state in ("R", "S", "D")
    assert info.starttime > 0
    assert info.starttime == procfs.stat(child.pid).starttime  # type: ignore[union-attr]


def test_children_descendants_and_tree(child: subprocess.Popen[bytes]) -> None:
    assert child.pid in procfs.children(os.getpid())
    assert child.pid in procfs.descendants(os.getpid())
    assert child.pid in procfs.tree()[os.getpid()]
    assert procfs.descendants(child.pid) == []
    assert child.pid in procfs.pids()


def test_command_line_and_environment(child: subprocess.Popen[bytes]) -> None:
    assert procfs.args(child.pid)[-3:] == [SLEEP.split()[-1], "two", "words"]
    assert procfs.cmdline(child.pid).endswith(f"-c {SLEEP} two words")
    assert procfs.environ(child.pid)["PROCFS_TEST"] == "a=b"


def test_a_zombie_is_not_running() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (info := procfs.stat(proc.pid)) is not None and info.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert info is not None and info.state in ("Z", "X")
    proc.wait()
    assert procfs.stat(proc.pid) is None


def test_cpu_time_grows_with_work() -> None:
    before = procfs.stat("self")
    assert before is not None
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = procfs.stat(os.getpid())
    assert after is not None
    assert after.cpu_seconds - before.cpu_seconds >= 0.2


def test_memory() -> None:
    rss = procfs.rss_bytes(os.getpid())
    assert rss == procfs.kib("self", "VmRSS") * 1024  # type: ignore[operator]
    assert 10 * 2**20 < rss < 2**34
    assert procfs.kib("self", "NoSuchField") is None


def test_threads_and_their_names() -> None:
    started, stop = threading.Event(), threading.Event()

    def named() -> None:
        # Thread names reach the kernel on Python 3.14; set it through prctl otherwise.
        import ctypes

        ctypes.CDLL(None).prctl(15, b"procfs-probe", 0, 0, 0)  # PR_SET_NAME
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=named)
    thread.start()
    try:
        started.wait(10)
        assert thread.native_id in procfs.thread_ids()
        assert procfs.thread_name("self", thread.native_id) == "procfs-probe"
        assert threading.get_native_id() in procfs.thread_ids(os.getpid())
    finally:
        stop.set()
        thread.join()


def test_owner_of_a_process_of_another_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to start a process as another user")
    proc = subprocess.Popen(["sleep", "30"], user=65534, group=65533, extra_groups=[])
    try:
        assert procfs.owner(proc.pid) == (65534, 65533)
        assert procfs.owner(os.getpid()) == (os.getuid(), os.getgid())
    finally:
        proc.kill()
        proc.wait()


def test_a_process_that_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert procfs.stat(proc.pid) is None
    assert procfs.cmdline(proc.pid) == ""
    assert procfs.args(proc.pid) == []
    assert procfs.environ(proc.pid) == {}
    assert procfs.owner(proc.pid) is None
    assert procfs.kib(proc.pid, "VmRSS") is None
    assert procfs.rss_bytes(proc.pid) == 0
    assert procfs.thread_ids(proc.pid) == []
    assert procfs.thread_name(proc.pid, proc.pid) == ""
    assert procfs.children(proc.pid) == []
