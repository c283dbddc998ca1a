"""A fleet of real `ogproxy serve` processes sharing one bucket on a real S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest

from ogproxy import objectstore
from ogproxy.objectstore import s3_store
from tests.support.cards import BUCKET, SECRET, png_image, signed
from tests.support.s3server import FaultProxy, Weed, bucket_objects, weed_with_bucket
from tests.support.servers import Server, metric, serve

ARGS = ("--secret", SECRET, "--pages", "1", "--browsers", "1", "--no-access-log")


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.1)


def get(server: Server, params: dict[str, str]) -> httpx.Response:
    response = httpx.get(signed(params, base=server.base + "/og.png"), timeout=30)
    assert response.status_code == 200, response.text
    assert png_image(response.content).size == (1200, 630)
    return response


def object_hits(server: Server) -> float:
    return metric(server, 'ogproxy_cache_tier_lookups_total{result="hit",tier="object"}')


def uploaded(server: Server, count: int) -> Callable[[], bool]:
    """``count`` cards are in the bucket (created by this server, or found there: an
    upload cut off by a dying store may have landed) and nothing is waiting."""
    return lambda: (
        metric(server, "ogproxy_object_store_uploads_total")
        + metric(server, "ogproxy_object_store_upload_conflicts_total")
        >= count
        and metric(server, "ogproxy_object_store_upload_queue") == 0
    )


def etag_key(response: httpx.Response) -> str:
    return response.headers["etag"].strip('"')


class Fleet:
    """Three `ogproxy serve` processes with their own cache dirs on one bucket prefix,
    started at the same time (each launch is slow) and shared by this module's tests."""

    def __init__(self, root: Path, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env
        self.dirs = [root / name for name in "abc"]
        self.args = (*ARGS, "--store", url)
        self._running: list[Any] = [serve(d, *self.args, env=env) for d in self.dirs]
        with ThreadPoolExecutor(3) as pool:
            starting = [pool.submit(m.__enter__) for m in self._running]
        self.servers: list[Server] = []
        try:
            self.servers = [future.result() for future in starting]
        except BaseException:
            self.stop()
            raise

    def redeploy(self, i: int) -> Server:
        """Stop instance ``i``, wipe its disk, start it again."""
        self._running[i].__exit__(None, None, None)
        shutil.rmtree(self.dirs[i] / "cache")
        self._running[i] = serve(self.dirs[i], *self.args, env=self.env)
        self.servers[i] = self._running[i].__enter__()
        return self.servers[i]

    def stop(self) -> None:
        for manager in self._running:
            with contextlib.suppress(Exception):
                manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def fleet(weed: Weed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    running = Fleet(tmp_path_factory.mktemp("fleet"), f"s3://{BUCKET}/fleet", weed.env())
    try:
        yield running
    finally:
        running.stop()


def renders(server: Server) -> float:
    return metric(server, "ogproxy_renders_total")


def in_bucket(weed: Weed, url: str, answers: list[httpx.Response]) -> list[bytes]:
    """The bucket's object for each answer (by its ETag, the content address): exactly one."""
    objects = bucket_objects(weed, url)
    found = []
    for answer in answers:
        key = etag_key(answer)
        [body] = [body for path, body in objects.items() if path.rsplit("/", 1)[-1].startswith(key)]
        found.append(body)
    return found


@pytest.mark.browser  # the fleet: real `ogproxy serve` processes, each with its Chromium
def test_a_fleet_renders_each_card_once_and_a_redeploy_starts_warm(
    weed: Weed, fleet: Fleet
) -> None:
    a, b, c = fleet.servers
    cards = [{"title": f"Fleet card {i}", "template": "gradient"} for i in range(5)]
    before = [renders(s) for s in (b, c)]
    first = [get(a, card) for card in cards]
    assert {r.headers["x-cache"] for r in first} == {"MISS"}
    wait_until(uploaded(a, len(cards)), what="uploads")
    for other, rendered in zip((b, c), before, strict=True):
        for card, original in zip(cards, first, strict=True):
            again = get(other, card)
            assert again.headers["x-cache"] == "HIT" and again.content == original.content
        assert renders(other) == rendered  # zero renders
    # A redeploy: b's disk is gone; its cards come back from the bucket, not the browser.
    b = fleet.redeploy(1)
    for card, original in zip(cards, first, strict=True):
        assert get(b, card).content == original.content
    assert renders(b) == 0
    assert object_hits(b) == len(cards)
    ready = httpx.get(b.base + "/readyz").json()
    assert ready["object_store"] == "ok" and ready["degraded"] is False
    assert in_bucket(weed, fleet.url, first) == [r.content for r in first]


@pytest.mark.browser  # the fleet: real `ogproxy serve` processes, each with its Chromium
def test_two_instances_racing_for_a_card_end_with_one_object(weed: Weed, fleet: Fleet) -> None:
    a, _, c = fleet.servers
    pair = (a, c)
    cards = [{"title": f"Raced card {i}"} for i in range(4)]
    counters = ("ogproxy_renders_total", "ogproxy_object_store_upload_conflicts_total")
    before = {(s.base, name): metric(s, name) for s in pair for name in counters}

    def delta(name: str) -> float:
        return sum(metric(s, name) - before[(s.base, name)] for s in pair)

    with ThreadPoolExecutor(8) as pool:
        both = [(pool.submit(get, a, card), pool.submit(get, c, card)) for card in cards]
        answers = [(x.result(), y.result()) for x, y in both]
    assert len(cards) <= delta("ogproxy_renders_total") <= 2 * len(cards)
    wait_until(lambda: all(uploaded(s, 0)() for s in pair), what="uploads")
    twice = sum(x.headers["x-cache"] == y.headers["x-cache"] == "MISS" for x, y in answers)
    # Each card rendered twice lost exactly one upload: one object per card, never two.
    assert delta("ogproxy_object_store_upload_conflicts_total") == twice
    bodies = in_bucket(weed, fleet.url, [x for x, _ in answers])
    for card, body in zip(cards, bodies, strict=True):
        # The loser now serves the winner's object, as the rest of the fleet will.
        assert get(a, card).content == get(c, card).content == body


@pytest.mark.browser  # the fleet: real `ogproxy serve` processes, each with its Chromium
def test_a_corrupted_object_is_rendered_again_and_replaced(weed: Weed, fleet: Fleet) -> None:
    a, _, c = fleet.servers
    card = {"title": "Bit rot"}
    good = get(a, card)
    wait_until(uploaded(a, 0), what="upload")
    objects = bucket_objects(weed, fleet.url)
    [path] = [p for p in objects if p.rsplit("/", 1)[-1].startswith(etag_key(good))]

    async def corrupt() -> None:
        store = s3_store(fleet.url, weed.env())
        attributes = (await obstore.get_async(store, path)).attributes
        damaged = good.content[:-100] + b"\0" * 100  # same MAC in the metadata, other bytes
        await obstore.put_async(store, path, damaged, attributes=attributes)

    asyncio.run(corrupt())
    rejected = 'ogproxy_cache_rejected_total{tier="object"}'
    rejected_before = metric(c, rejected)
    again = get(c, card)
    assert again.headers["x-cache"] == "MISS" and again.content == good.content
    assert metric(c, rejected) == rejected_before + 1
    wait_until(uploaded(c, 0), what="replacement upload")
    assert in_bucket(weed, fleet.url, [good]) == [good.content]


def test_a_failing_store_costs_renders_never_answers(
    weed: Weed, store_url: str, tmp_path: Path
) -> None:
    proxy = FaultProxy(weed.ports["s3.port"])
    try:
        env = weed.env(proxy.endpoint)
        with (
            serve(tmp_path / "a", *ARGS, "--store", store_url, env=env, fake=True) as a,
            ThreadPoolExecutor(6) as pool,
        ):
            object_errors = 'ogproxy_cache_tier_lookups_total{result="error",tier="object"}'
            # A slow store: the read is cut off (an error, not a miss) and the card rendered.
            proxy.delay = 3.0
            proxy.set("slow")
            acknowledged = [get(a, {"title": "While the store crawls"})]
            assert metric(a, object_errors) == 1
            proxy.set("500")
            cards = [{"title": f"During the outage {i}"} for i in range(6)]
            answers = list(pool.map(lambda card: get(a, card), cards))
            assert {r.headers["x-cache"] for r in answers} == {"MISS"}
            ready = httpx.get(a.base + "/readyz")
            assert ready.status_code == 200
            assert ready.json()["degraded"] is True and ready.json()["object_store"] == "open"
            assert metric(a, "ogproxy_object_store_breaker_open") == 1
            assert metric(a, object_errors) >= 2
            proxy.set("403")
            acknowledged += [*answers, get(a, {"title": "Forbidden now"})]
            proxy.set("pass")
            # The retried uploads (and the probe among them) close the breaker again, and
            # every acknowledged card reaches the bucket.
            wait_until(uploaded(a, len(acknowledged)), timeout=60, what="retried uploads")
            assert httpx.get(a.base + "/readyz").json()["object_store"] == "ok"
            assert metric(a, "ogproxy_object_store_breaker_opened_total") >= 1
            assert metric(a, "ogproxy_object_store_upload_failures_total") == 0
            # Uploads still failing at shutdown: the drain waits its deadline, no longer,
            # and says what it left behind.
            proxy.set("500")
            get(a, {"title": "Left behind at shutdown"})
            stopping = time.monotonic()
            a.proc.send_signal(signal.SIGINT)
            a.proc.wait(timeout=60)
            assert time.monotonic() - stopping < objectstore.DRAIN + 10
            assert "shutdown: 1 uploads" in a.output()
    finally:
        proxy.close()
    assert in_bucket(weed, store_url, acknowledged) == [r.content for r in acknowledged]
    assert len(bucket_objects(weed, store_url)) == len(acknowledged)


@pytest.fixture
def own_weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """A server of its own, for a test that kills it."""
    with weed_with_bucket(tmp_path_factory.mktemp("own-weed"), BUCKET, kill=True) as server:
        yield server


def test_store_killed_mid_burst_loses_nothing_acknowledged(own_weed: Weed, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/killed"
    args = (*ARGS, "--store", url)
    cards = [{"title": f"Burst card {i}"} for i in range(8)]
    with (
        serve(tmp_path / "a", *args, env=own_weed.env(), fake=True) as a,
        ThreadPoolExecutor(4) as pool,
    ):
        pending = [pool.submit(get, a, card) for card in cards]
        wait_until(lambda: sum(f.done() for f in pending) >= 3, what="first answers")
        own_weed.stop(kill=True)
        answers = [f.result() for f in pending]  # every request still answers
        own_weed.start()
        wait_until(uploaded(a, len(cards)), timeout=60, what="uploads after the restart")
        assert metric(a, "ogproxy_object_store_upload_failures_total") == 0
    # Every acknowledged card is in the bucket, whole: a new instance would serve it.
    assert in_bucket(own_weed, url, answers) == [r.content for r in answers]
