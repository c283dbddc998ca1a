"""A card's render lock across the worker processes that share one cache directory.

Single flight (singleflight.py) makes one render of a card per process; this lock, a
diskcache entry that expires, makes one per cache directory: the others wait, then find
the render on the shared disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import diskcache

from .disktier import DISK_ERRORS

log = logging.getLogger("ogproxy.store")

PREFIX = "ogproxy-lock:"  # a lock's name in the cache: the prefix and the card's key
POLL = 0.02  # seconds between tries while another process holds the lock


@asynccontextmanager
async def render_lock(cache: diskcache.Cache | None, key: str, hold: float) -> AsyncIterator[None]:
    """Hold ``key`` against other processes sharing ``cache`` (several workers).

    Waits while another process holds it, at most ``hold`` seconds: a lock left by a
    process that died expires after that. Without a usable cache it does not wait.
    """
    # A token of this acquisition: a render that outlives its lock must not release
    # the lock that another process took after it expired.
    name, token = f"{PREFIX}{key}", f"{os.getpid()}:{secrets.token_hex(8)}"
    deadline = time.monotonic() + hold
    held = False
    while cache is not None and time.monotonic() < deadline:
        try:
            # An empty Cache is falsy (it has a length): compare with None, always.
            held = await anyio.to_thread.run_sync(lambda: cache.add(name, token, expire=hold))
        except DISK_ERRORS:
            break
        if held:
            break
        await asyncio.sleep(POLL)
    try:
        yield
    finally:
        if held and cache is not None:
            await anyio.to_thread.run_sync(_release, cache, name, token)


def _release(cache: diskcache.Cache, name: str, token: str) -> None:
    """Delete the lock ``name`` if it still holds ``token`` (compare and delete, atomic)."""
    try:
        with cache.transact():
            if cache.get(name) == token:
                cache.delete(name)
    except DISK_ERRORS as exc:
        log.warning("could not release render lock %s: %s", name.removeprefix(PREFIX)[:12], exc)
