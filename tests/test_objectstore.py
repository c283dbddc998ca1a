"""The object-store tier against a real S3 server (SeaweedFS), with faults injected."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import obstore
import pytest

from ogproxy import objectstore
from ogproxy.breaker import Breaker
from ogproxy.config import Settings
from ogproxy.config import parse_store_url as parse_url
from ogproxy.delivery import IMMUTABLE
from ogproxy.errors import ConfigError
from ogproxy.integrity import CardSeal
from ogproxy.objectstore import MAC_FIELD, ObjectTier, s3_store
from ogproxy.store import Store
from tests.support.cards import SECRET
from tests.support.s3server import FaultProxy, Weed

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
SEAL = CardSeal([SECRET])


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def proxy(weed: Weed) -> Iterator[FaultProxy]:
    fault = FaultProxy(weed.ports["s3.port"])
    try:
        yield fault
    finally:
        fault.close()


@pytest.fixture
async def tier(weed: Weed, store_url: str) -> AsyncIterator[ObjectTier]:
    opened = await ObjectTier.open(store_url, weed.env(), SEAL)
    opened.start()
    yield opened
    await opened.close(1)


@pytest.fixture
async def faulty(proxy: FaultProxy, weed: Weed, store_url: str) -> AsyncIterator[ObjectTier]:
    """A tier that reaches the store through the fault proxy, with a short cool-down."""
    opened = await ObjectTier.open(store_url, weed.env(proxy.endpoint), SEAL)
    opened.breaker = Breaker(failures=3, cooldown=0.5)
    opened.start()
    yield opened
    await opened.close(1)


def test_store_url_is_checked_and_named() -> None:
    assert parse_url("s3://cards") == ("cards", "")
    assert parse_url("s3://cards/og/v1/") == ("cards", "og/v1")
    bad_urls = ("cards", "http://cards/x", "s3://", "s3://A_B", "s3://a..b/x", "gs://cards")
    for bad in (*bad_urls, "s3://cards/../x", "s3://cards/a//b", "s3://cards/a b", "s3://c/."):
        with pytest.raises(ConfigError, match="OGPROXY_STORE"):
            parse_url(bad)
    with pytest.raises(ConfigError, match="OGPROXY_STORE"):
        Settings(dev=True, store="s3:/nope")
    settings = Settings.from_env({"OGPROXY_SECRET": "x" * 16, "OGPROXY_STORE": "s3://cards/p"})
    assert settings.store == "s3://cards/p"
    assert Settings.from_env(settings.to_env()).store == "s3://cards/p"


def test_the_client_follows_the_aws_variables() -> None:
    local = s3_store(
        "s3://cards/og",
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333/", "AWS_ACCESS_KEY_ID": "k",
         "AWS_SECRET_ACCESS_KEY": "s"},
    )  # fmt: skip
    assert local.prefix == "og"
    assert local.config["endpoint"] == "http://127.0.0.1:8333"
    assert local.config["region"] == "us-east-1"  # the default with an endpoint
    assert str(local.config["virtual_hosted_style_request"]) == "false"  # path-style
    assert local.client_options is not None and str(local.client_options["allow_http"]) == "true"
    r2 = s3_store(
        "s3://cards",
        {"AWS_ENDPOINT_URL": "https://acc.r2.cloudflarestorage.com", "AWS_REGION": "auto"},
    )
    assert r2.config["region"] == "auto" and r2.prefix is None
    assert r2.client_options is not None and str(r2.client_options["allow_http"]) == "false"
    aws = s3_store("s3://cards/x", {"AWS_REGION": "eu-west-1"})
    assert aws.config["region"] == "eu-west-1" and "endpoint" not in aws.config


async def test_a_missing_bucket_is_a_start_up_error(weed: Weed) -> None:
    with pytest.raises(ConfigError, match="bucket of s3://no-such-bucket/x does not exist"):
        await ObjectTier.open("s3://no-such-bucket/x", weed.env(), SEAL)


async def test_cards_round_trip_with_type_and_digest(tier: ObjectTier) -> None:
    key = key_of("round trip")
    assert await tier.get(key, "png") is None
    assert await tier.put(key, "png", PNG) == PNG
    assert await tier.get(key, "png") == PNG
    result = await obstore.get_async(tier.store, f"{key[:2]}/{key}")
    assert result.attributes["Content-Type"] == "image/png"
    assert result.attributes["Cache-Control"] == IMMUTABLE
    assert tier.stats.hits == 1 and tier.stats.misses == 1 and tier.stats.errors == 0
    assert tier.uploads == 1


async def test_concurrent_creates_end_with_one_object_and_both_hold_it(
    weed: Weed, store_url: str
) -> None:
    """Two instances render the same card: the first object stays, the other adopts it."""
    one = await ObjectTier.open(store_url, weed.env(), SEAL)
    two = await ObjectTier.open(store_url, weed.env(), SEAL)
    key = key_of("raced")
    mine, theirs = PNG + b"one", PNG + b"two"
    stored = await asyncio.gather(one.put(key, "png", mine), two.put(key, "png", theirs))
    assert stored[0] == stored[1] and stored[0] in (mine, theirs)
    assert one.conflicts + two.conflicts == 1
    objects = await obstore.list(one.store).collect_async()
    assert [meta["path"] for meta in objects] == [f"{key[:2]}/{key}"]
    assert await one.get(key, "png") == stored[0]


async def test_a_corrupted_object_is_a_miss_and_is_dropped(tier: ObjectTier) -> None:
    key = key_of("corrupt")
    await tier.put(key, "png", PNG)
    path = f"{key[:2]}/{key}"
    meta = (await obstore.get_async(tier.store, path)).attributes
    # Same metadata (MAC of the good bytes), other bytes: a bit flip at rest.
    await obstore.put_async(tier.store, path, PNG[:-1] + b"X", attributes=dict(meta))
    assert await tier.get(key, "png") is None
    assert tier.stats.rejected == 1
    assert await obstore.list(tier.store).collect_async() == []
    await obstore.put_async(tier.store, path, PNG)  # no MAC at all: not ours
    assert await tier.get(key, "png") is None and tier.stats.rejected == 2


def _object(body: bytes, tag: str, media_type: str = "image/png") -> tuple[bytes, dict[str, str]]:
    return body, {"Content-Type": media_type, MAC_FIELD: tag}


BOUND, OLD_DIGEST = key_of("bound"), hashlib.blake2b(PNG, digest_size=16).hexdigest()
# What may sit at a PNG card's path, each with the metadata it would carry.
FOREIGN = {
    "another card's object": _object(PNG, SEAL.tag(key_of("other"), "png", PNG)),
    "a JPEG card's object": _object(JPEG, SEAL.tag(BOUND, "jpeg", JPEG), "image/jpeg"),
    "JPEG bytes with a PNG MAC": _object(JPEG, SEAL.tag(BOUND, "png", JPEG)),
    "a good MAC, another type": _object(PNG, SEAL.tag(BOUND, "png", PNG), "image/jpeg"),
    "another secret's": _object(PNG, CardSeal(["another-secret-0123456"]).tag(BOUND, "png", PNG)),
    "an older ogproxy's": (PNG, {"Content-Type": "image/png", "ogproxy-blake2b": OLD_DIGEST}),
}


@pytest.mark.parametrize("case", FOREIGN)
async def test_an_object_not_bound_to_its_card_is_deleted_and_missed(
    tier: ObjectTier, case: str
) -> None:
    body, attributes = FOREIGN[case]
    await obstore.put_async(tier.store, f"{BOUND[:2]}/{BOUND}", body, attributes=attributes)
    assert await tier.get(BOUND, "png") is None
    assert tier.stats.rejected == 1 and tier.stats.misses == 1
    assert await obstore.list(tier.store).collect_async() == []
    assert await tier.put(BOUND, "png", PNG) == PNG and tier.uploads == 1  # replaced
    assert await tier.get(BOUND, "png") == PNG


async def test_the_store_behind_a_store_renders_back_from_the_bucket(
    tier: ObjectTier, tmp_path: Path
) -> None:
    """memory -> disk -> bucket: a wiped disk reads the bucket and keeps the card again."""
    key = key_of("tiers")
    store = Store(tmp_path / "a", size_limit=None, memory_bytes=2**20, seal=SEAL, remote=tier)
    await store.put(key, "png", PNG)
    await tier.close(5)  # the upload is done
    assert tier.uploads == 1
    wiped = Store(tmp_path / "b", size_limit=None, memory_bytes=2**20, seal=SEAL, remote=tier)
    assert await wiped.get(key, "png") == PNG
    assert wiped.tiers["disk"].misses == 1 and tier.stats.hits == 1
    wiped.memory = type(wiped.memory)(2**20)
    assert await wiped.get(key, "png") == PNG  # now from its own disk
    assert wiped.tiers["disk"].hits == 1 and tier.stats.hits == 1
    store.close()
    wiped.close()


@pytest.mark.parametrize("fault", ["500", "403", "close"])
async def test_a_failing_store_opens_the_breaker_then_closes_it(
    faulty: ObjectTier, proxy: FaultProxy, fault: str
) -> None:
    key = key_of("breaker " + fault)
    proxy.set(fault)
    for _ in range(3):
        assert await faulty.get(key, "png") is None
    assert faulty.breaker.is_open and faulty.stats.errors == 3
    seen = proxy.requests
    started = time.monotonic()
    for _ in range(20):  # skipped while open: no request, no wait
        assert await faulty.get(key, "png") is None
    assert proxy.requests == seen and time.monotonic() - started < 0.1
    proxy.set("pass")
    await asyncio.sleep(0.6)
    assert await faulty.get(key, "png") is None  # the probe: a real miss
    assert not faulty.breaker.is_open and faulty.breaker.opened == 1


async def test_a_slow_store_costs_at_most_the_read_timeout(
    faulty: ObjectTier, proxy: FaultProxy
) -> None:
    proxy.delay = 3.0
    proxy.set("slow")
    started = time.monotonic()
    assert await faulty.get(key_of("slow"), "png") is None
    assert time.monotonic() - started < objectstore.READ_TIMEOUT + 0.5
    assert faulty.stats.errors == 1


async def test_uploads_are_retried_until_the_store_answers(
    faulty: ObjectTier, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objectstore, "BACKOFF", 0.05)
    monkeypatch.setattr(objectstore, "MAX_BACKOFF", 0.2)
    proxy.set("500")
    keys = [key_of(f"queued {i}") for i in range(10)]
    for key in keys:
        faulty.enqueue(key, "png", PNG)
    await asyncio.sleep(0.5)
    assert faulty.uploads == 0 and faulty.waiting == 10
    proxy.set("pass")
    await faulty.close(10)
    assert faulty.uploads == 10 and faulty.upload_failures == 0 and faulty.waiting == 0
    for key in keys:
        assert await faulty.get(key, "png") == PNG


async def test_uploads_given_up_or_left_at_shutdown_are_counted(
    faulty: ObjectTier, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objectstore, "PATIENCE", 0.3)
    monkeypatch.setattr(objectstore, "BACKOFF", 0.01)
    proxy.set("403")
    faulty.enqueue(key_of("given up"), "png", PNG)
    await asyncio.sleep(1.0)
    assert faulty.upload_failures == 1 and faulty.waiting == 0
    monkeypatch.setattr(objectstore, "PATIENCE", 100)
    monkeypatch.setattr(objectstore, "BACKOFF", 0.5)
    for i in range(3):
        faulty.enqueue(key_of(f"left {i}"), "png", PNG)
    started = time.monotonic()
    await faulty.close(0.5)
    assert time.monotonic() - started < 2
    assert faulty.upload_failures == 4 and faulty.uploads == 0


async def test_a_full_queue_drops_and_counts(tier: ObjectTier) -> None:
    small = ObjectTier(tier.store, tier.url, SEAL)
    small._queue = asyncio.Queue(2)  # not started: nothing leaves the queue
    for i in range(5):
        small.enqueue(key_of(f"full {i}"), "png", PNG)
    assert small.waiting == 2 and small.upload_failures == 3


async def test_usage_prune_and_clear(tier: ObjectTier) -> None:
    await tier.put(key_of("usage 0"), "png", PNG + bytes([0]))
    await asyncio.sleep(1.1)  # S3 times have one-second resolution
    for i in (1, 2):
        await tier.put(key_of(f"usage {i}"), "png", PNG + bytes([i]))
    count, size = await objectstore.usage(tier)
    assert (count, size) == (3, 3 * (len(PNG) + 1))
    assert await objectstore.prune(tier, 2 * (len(PNG) + 1)) == 1  # the oldest
    assert await tier.get(key_of("usage 0"), "png") is None
    assert await tier.get(key_of("usage 2"), "png") == PNG + bytes([2])
    assert await objectstore.clear(tier) == 2
    assert await objectstore.usage(tier) == (0, 0)
