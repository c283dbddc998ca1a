"""The shared cache tier: cards in an S3-compatible bucket (S3, R2, GCS, MinIO, SeaweedFS).

Memory -> disk -> object store -> render. The bucket lets a fleet render a card once, for
good: across instances, redeploys that wipe the disk, and CDN purges.

The object store is a cache, never a dependency. Every call is bounded by a timeout and
goes through a circuit breaker; a failure, a timeout, a refusal or an object that fails
its check counts as a miss (the card is rendered), never as a failed request. Uploads leave the
request path: a bounded queue, retried with back-off, drained on shutdown, and every
upload that is given up is counted.

Objects are named by the card's content address (``{prefix}/{key[:2]}/{key}``), carry
their content type and a MAC that binds their bytes to that key and type (integrity.py;
checked on every read, like disk entries: a swapped, foreign or damaged object is
deleted, counted and rendered again), and are created with ``If-None-Match: *``: when
two instances render the same card, the first object stays and the other instance
adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError, PreconditionError
from obstore.store import S3Store

from .breaker import Breaker
from .config import parse_store_url as parse_url
from .delivery import IMMUTABLE
from .errors import ConfigError
from .formats import FORMATS, Format
from .integrity import CardSeal
from .tierstats import TierStats

log = logging.getLogger("ogproxy.objectstore")

READ_TIMEOUT = 1.0  # seconds; a card is ~50 KB, a healthy store answers in a few ms
WRITE_TIMEOUT = 5.0  # seconds per upload attempt
QUEUE = 1000  # uploads waiting (~50 MB of cards); beyond it they are dropped and counted
UPLOADERS = 4  # uploads in flight at once
PATIENCE = 60.0  # seconds an upload is retried before it is given up
BACKOFF, MAX_BACKOFF = 0.25, 5.0  # seconds between tries, doubling
DRAIN = 10.0  # seconds shutdown waits for queued uploads
MAX_OBJECT = 32 * 2**20  # an object bigger than any card is not read
MAC_FIELD = "ogproxy-mac"  # user metadata (x-amz-meta-ogproxy-mac): integrity.CardSeal.tag
# What obstore and the network throw (asyncio's TimeoutError is not the builtin on 3.10).
_ERRORS = (BaseError, OSError, TimeoutError, asyncio.TimeoutError)


def s3_store(url: str, environ: Mapping[str, str]) -> S3Store:
    """The client for ``url``, configured from the standard ``AWS_*`` variables.

    Credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, roles) are
    read by the client itself. An endpoint (R2, GCS, MinIO, SeaweedFS) gets path-style
    requests, plain http when it says so, and us-east-1 unless AWS_REGION says otherwise.
    """
    bucket, prefix = parse_url(url)
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    config: dict[str, object] = {}
    if endpoint:
        config.update(endpoint=endpoint.rstrip("/"), virtual_hosted_style_request=False)
        region = region or "us-east-1"
    if region:
        config["region"] = region
    for name, var in (
        ("access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ):
        if environ.get(var):
            config[name] = environ[var]
    return S3Store(
        bucket,
        prefix=prefix or None,
        client_options={
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=READ_TIMEOUT),
            "timeout": timedelta(seconds=WRITE_TIMEOUT),
        },
        # Our own breaker and upload queue retry; the client's retries would only hide
        # a dead store behind a longer wait on the request path.
        retry_config={
            "max_retries": 0,
            "retry_timeout": timedelta(seconds=WRITE_TIMEOUT),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=1),
                "base": 2,
            },
        },
        **config,  # type: ignore[arg-type]
    )


def check_store(url: str, environ: Mapping[str, str] | None = None) -> None:
    """Fail fast, before serving, when the bucket does not exist (a ConfigError)."""
    asyncio.run(ObjectTier.open(url, os.environ if environ is None else environ, seal=None))


def _path(key: str) -> str:
    return f"{key[:2]}/{key}"


@dataclass
class ObjectTier:
    """Reads, conditional writes and background uploads of cards in one bucket prefix."""

    store: S3Store
    url: str
    seal: CardSeal | None = None  # None (the cache commands): lists and deletes only
    breaker: Breaker = field(default_factory=Breaker)
    stats: TierStats = field(default_factory=TierStats)
    uploads: int = 0  # objects created by this process
    conflicts: int = 0  # uploads that found the object already there
    upload_failures: int = 0  # uploads given up (retries exhausted, queue full, shutdown)
    # Called with the bucket's bytes when another instance's upload won the race.
    on_adopt: Callable[[str, Format, bytes], Awaitable[None]] | None = None
    _queue: asyncio.Queue[tuple[str, Format, bytes]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE)
    )
    _workers: list[asyncio.Task[None]] = field(default_factory=list)
    _pending: int = 0  # uploads queued or in flight

    @classmethod
    async def open(
        cls, url: str, environ: Mapping[str, str], seal: CardSeal | None, queue: int = QUEUE
    ) -> ObjectTier:
        """Connect and check the bucket: a missing bucket is a ConfigError, an
        unreachable or forbidding store only a warning (it is a cache).

        ``seal`` binds the cards to their keys; ``queue`` bounds the uploads waiting (0:
        unbounded, for a build that waits).
        """
        tier = cls(s3_store(url, environ), url, seal, _queue=asyncio.Queue(queue))
        try:
            await asyncio.wait_for(
                obstore.list(tier.store, chunk_size=1).__anext__(), WRITE_TIMEOUT
            )
        except StopAsyncIteration:
            pass  # an empty bucket
        except _ERRORS as exc:
            if "NoSuchBucket" in str(exc):
                raise ConfigError(f"OGPROXY_STORE: bucket of {url} does not exist") from None
            log.warning("object store %s not usable at start-up, rendering instead: %s", url, exc)
            tier.breaker.failure()
        return tier

    @property
    def waiting(self) -> int:
        """Uploads queued or in flight."""
        return self._pending

    async def get(self, key: str, fmt: Format) -> bytes | None:
        """The card ``key`` in ``fmt`` if the bucket has it intact; None on a miss, an
        error, an object that fails its check, or while the breaker is open."""
        if not self.breaker.allow():
            return None
        started = time.perf_counter()
        try:
            value = await asyncio.wait_for(self._fetch(key, fmt), READ_TIMEOUT)
        except (NotFoundError, FileNotFoundError):
            self.breaker.success()
            self.stats.count("miss", time.perf_counter() - started)
            return None
        except _ERRORS as exc:
            self.breaker.failure()
            self.stats.count("error", time.perf_counter() - started)
            log.warning("object store read of %s failed, rendering instead: %s", key[:12], exc)
            return None
        self.breaker.success()
        self.stats.count("miss" if value is None else "hit", time.perf_counter() - started)
        return value

    async def _fetch(self, key: str, fmt: Format) -> bytes | None:
        assert self.seal is not None
        result = await obstore.get_async(self.store, _path(key))
        size = int(result.meta["size"])
        value = bytes(await result.bytes_async()) if size <= MAX_OBJECT else b""
        attributes = result.attributes
        # The type too: a CDN in front of the bucket serves the object with it.
        if attributes.get("Content-Type") != FORMATS[fmt].media_type or not self.seal.check(
            key, fmt, value, attributes.get(MAC_FIELD)
        ):
            self.stats.rejected += 1
            log.warning(
                "object %s failed its check (damaged, not this card or %s, or written with "
                "another secret or by an older ogproxy); deleting it and rendering again",
                key[:12],
                fmt,
            )
            await obstore.delete_async(self.store, _path(key))
            return None
        return value

    async def put(self, key: str, fmt: Format, value: bytes) -> bytes:
        """Create the object unless it exists. Returns what the bucket now holds for
        ``key``: ``value``, or the object another instance created first. Raises the
        store's error when it fails."""
        assert self.seal is not None
        attributes = {
            "Content-Type": FORMATS[fmt].media_type,
            "Cache-Control": IMMUTABLE,
            MAC_FIELD: self.seal.tag(key, fmt, value),
        }
        try:
            await asyncio.wait_for(
                obstore.put_async(
                    self.store, _path(key), value, mode="create", attributes=attributes
                ),
                WRITE_TIMEOUT,
            )
        except (AlreadyExistsError, PreconditionError):
            self.breaker.success()
            self.conflicts += 1
            winner = await self.get(key, fmt)
            if winner is None:  # failed its check (now deleted) or unreadable: try again
                raise TimeoutError(f"object {key[:12]} exists but could not be read") from None
            return winner
        except _ERRORS:
            self.breaker.failure()
            raise
        self.breaker.success()
        self.uploads += 1
        return value

    def start(self) -> None:
        """Start the uploaders (in the running event loop)."""
        self._workers = [asyncio.ensure_future(self._upload_forever()) for _ in range(UPLOADERS)]

    def enqueue(self, key: str, fmt: Format, value: bytes) -> None:
        """Upload in the background; never blocks the request (a full queue drops it)."""
        try:
            self._queue.put_nowait((key, fmt, value))
        except asyncio.QueueFull:
            self.upload_failures += 1
            log.error("object store upload queue full; %s not uploaded", key[:12])
        else:
            self._pending += 1

    async def _upload_forever(self) -> None:
        while True:
            key, fmt, value = await self._queue.get()
            try:
                await self._upload(key, fmt, value)
            finally:
                self._pending -= 1
                self._queue.task_done()

    async def _upload(self, key: str, fmt: Format, value: bytes) -> None:
        give_up, tries = time.monotonic() + PATIENCE, 0
        while time.monotonic() < give_up:
            if self.breaker.allow():  # while open, wait for the probe without trying
                tries += 1
                try:
                    stored = await self.put(key, fmt, value)
                except _ERRORS as exc:
                    log.info("upload of %s failed (try %d): %s", key[:12], tries, exc)
                else:
                    if stored != value and self.on_adopt is not None:
                        await self.on_adopt(key, fmt, stored)
                    return
            await asyncio.sleep(min(BACKOFF * 2 ** max(tries - 1, 0), MAX_BACKOFF))
        self.upload_failures += 1
        log.error("object store upload of %s given up after %d tries", key[:12], tries)

    async def close(self, deadline: float = DRAIN) -> None:
        """Finish queued uploads within ``deadline`` seconds; count the rest as failed."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), deadline)
        left = self._pending
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if left:
            self.upload_failures += left
            log.error("shutdown: %d uploads to %s not finished in %.0f s", left, self.url, deadline)


# The whole prefix, for `ogproxy cache stats|prune|clear`.


async def usage(tier: ObjectTier) -> tuple[int, int]:
    """Objects and bytes under the prefix."""
    count = size = 0
    async for chunk in obstore.list(tier.store, chunk_size=1000):
        count += len(chunk)
        size += sum(int(meta["size"]) for meta in chunk)
    return count, size


async def prune(tier: ObjectTier, to_bytes: int) -> int:
    """Delete the oldest objects until the prefix holds at most ``to_bytes``."""
    metas = [meta async for chunk in obstore.list(tier.store, chunk_size=1000) for meta in chunk]
    metas.sort(key=lambda meta: meta["last_modified"])
    excess = sum(int(meta["size"]) for meta in metas) - to_bytes
    doomed = []
    for meta in metas:
        if excess <= 0:
            break
        doomed.append(meta["path"])
        excess -= int(meta["size"])
    for start in range(0, len(doomed), 1000):
        await obstore.delete_async(tier.store, doomed[start : start + 1000])
    return len(doomed)


async def clear(tier: ObjectTier) -> int:
    """Delete every object under the prefix; returns how many there were."""
    return await prune(tier, 0)
