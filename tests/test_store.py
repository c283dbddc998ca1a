"""The cache store: integrity, disk faults and the cross-process render lock."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ogproxy.integrity import CardSeal
from ogproxy.memtier import MemoryLRU
from ogproxy.store import Store
from tests.support.cards import SECRET

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200  # 51 KB: stored as a file by diskcache


def store(tmp_path: Path, memory: int = 1 << 20, secret: str = SECRET) -> Store:
    seal = CardSeal([secret])
    return Store(tmp_path / "cache", size_limit=1 << 24, memory_bytes=memory, seal=seal)


async def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    s = store(tmp_path)
    await s.put("k", "png", PNG)
    s.close()
    again = store(tmp_path)
    assert again.get_memory("k") is None
    assert await again.get("k", "png") == PNG
    assert again.get_memory("k") == PNG  # promoted to memory


@pytest.mark.parametrize("damage", ["truncate", "flip"])
async def test_corrupted_entry_is_dropped_not_served(tmp_path: Path, damage: str) -> None:
    s = store(tmp_path, memory=0)
    await s.put("k", "png", PNG)
    files = [p for p in (tmp_path / "cache").rglob("*.val")]
    assert len(files) == 1
    data = files[0].read_bytes()
    files[0].write_bytes(data[:-100] if damage == "truncate" else data[:500] + b"X" + data[501:])
    assert await s.get("k", "png") is None
    assert s.disk.stats.rejected == 1
    assert s.disk.cache is not None and "k" not in s.disk.cache


@pytest.mark.parametrize("case", ["another key", "another format", "another secret"])
async def test_an_entry_is_served_only_as_the_card_it_was_stored_as(
    tmp_path: Path, case: str
) -> None:
    """Memory holds only what passed the check: a rejected entry is never promoted."""
    writer = store(
        tmp_path, secret="another-deployment-0123" if case == "another secret" else SECRET
    )
    await writer.put("other" if case == "another key" else "k", "png", PNG)
    writer.close()
    s = store(tmp_path)
    assert s.disk.cache is not None
    if case == "another key":
        s.disk.cache.set("k", s.disk.cache.get("other"))
    assert await s.get("k", "webp" if case == "another format" else "png") is None
    assert s.disk.stats.rejected == 1 and len(s.memory) == 0 and "k" not in s.disk.cache


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        sqlite3.OperationalError("disk I/O error"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
)
async def test_disk_errors_cost_a_render_never_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    s = store(tmp_path, memory=0)

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(s.disk.cache, "set", fail)
    monkeypatch.setattr(s.disk.cache, "get", fail)
    await s.put("k", "png", PNG)  # logged, not raised
    assert await s.get("k", "png") is None
    assert s.disk.errors == 2


async def test_unusable_cache_dir_means_memory_only(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the directory should be")
    s = store(tmp_path)
    assert s.disk.cache is None
    await s.put("k", "png", PNG)
    assert await s.get("k", "png") == PNG


def test_the_cache_dir_is_closed_to_other_users(tmp_path: Path) -> None:
    """Chromium may run as a user of its own (sandbox.py): it must not read the cache, a
    new one or one an older version left open to everyone; the group keeps its access."""
    old = os.umask(0o022)
    try:
        store(tmp_path / "new").close()
        opened = tmp_path / "old" / "cache"
        opened.mkdir(parents=True, mode=0o755)
        opened.chmod(0o755)
        store(tmp_path / "old").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE(opened.stat().st_mode) == 0o750


async def test_render_lock_excludes_other_holders(tmp_path: Path) -> None:
    a, b = store(tmp_path), store(tmp_path)  # two processes' views of one cache dir
    order: list[str] = []

    async def second() -> None:
        async with b.render_lock("k", hold=10):
            order.append("b")

    async with a.render_lock("k", hold=10):
        task = asyncio.create_task(second())
        await asyncio.sleep(0.2)
        assert not task.done()
        order.append("a")
    await asyncio.wait_for(task, 5)
    assert order == ["a", "b"]
    assert a.disk.cache is not None and "ogproxy-lock:k" not in a.disk.cache


async def test_render_lock_on_an_empty_cache_is_taken_at_once(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.disk.cache is not None and len(s.disk.cache) == 0
    async with s.render_lock("k", hold=30):
        assert s.disk.cache.get("ogproxy-lock:k") is not None


def test_memory_lru_is_bounded_by_bytes() -> None:
    lru = MemoryLRU(100)
    for i in range(10):
        lru.put(str(i), b"x" * 20)
    assert lru.bytes <= 100 and len(lru) == 5
    assert lru.get("0") is None and lru.get("9") == b"x" * 20
    lru.put("big", b"x" * 30)  # over a quarter of the budget: not kept
    assert lru.get("big") is None


async def test_an_expired_lock_does_not_release_the_next_holder(tmp_path: Path) -> None:
    """A took the lock and outlived it; B took it over. A finishing must not free B's."""
    first, second, third = store(tmp_path), store(tmp_path), store(tmp_path)
    second_holds, second_done = asyncio.Event(), asyncio.Event()

    async def hold_it() -> None:
        async with second.render_lock("k", hold=30):
            second_holds.set()
            await second_done.wait()

    async with first.render_lock("k", hold=0.3):
        await asyncio.sleep(0.5)  # a render longer than the lock: it expired meanwhile
        task = asyncio.create_task(hold_it())
        await asyncio.wait_for(second_holds.wait(), 10)
    started = asyncio.get_running_loop().time()
    async with third.render_lock("k", hold=1.0):  # waits out its hold: B still has it
        waited = asyncio.get_running_loop().time() - started
    second_done.set()
    await task
    assert waited >= 0.9
    for s in (first, second, third):
        s.close()
