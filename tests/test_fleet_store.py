"""A fleet of real `ogproxy serve` processes sharing one bucket on a real S3 server."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import obstore
import pytest
from conftest import BUCKET, SECRET, png_image, signed
from s3server import FaultProxy, Weed, bucket_objects
from servers import Server, metric, serve

from ogproxy.objectstore import s3_store

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


@contextmanager
def serve_many(dirs: list[Path], *args: str, env: dict[str, str]) -> Iterator[list[Server]]:
    """Several `ogproxy serve` processes, started at the same time (each launch is slow)."""
    with ExitStack() as stack, ThreadPoolExecutor(len(dirs)) as pool:
        managers = [serve(d, *args, env=env) for d in dirs]
        starting = [pool.submit(m.__enter__) for m in managers]
        for manager, future in zip(managers, starting, strict=True):
            stack.push(manager)  # stopped on the way out, also when another start failed
            future.exception()
        yield [future.result() for future in starting]


@pytest.fixture
def fleet_args(store_url: str) -> tuple[str, ...]:
    return (*ARGS, "--store", store_url)


def test_a_fleet_renders_each_card_once_and_a_redeploy_starts_warm(
    weed: Weed, store_url: str, fleet_args: tuple[str, ...], tmp_path: Path
) -> None:
    cards = [{"title": f"Fleet card {i}", "template": "gradient"} for i in range(5)]
    dirs = [tmp_path / name for name in "abc"]
    with serve_many(dirs, *fleet_args, env=weed.env()) as (a, b, c):
        first = [get(a, card) for card in cards]
        assert {r.headers["x-cache"] for r in first} == {"MISS"}
        wait_until(uploaded(a, len(cards)), what="uploads")
        for other in (b, c):
            for card, original in zip(cards, first, strict=True):
                again = get(other, card)
                assert again.headers["x-cache"] == "HIT" and again.content == original.content
            assert metric(other, "ogproxy_renders_total") == 0
            assert object_hits(other) == len(cards)
    # A redeploy: b's disk is gone; its cards come back from the bucket, not the browser.
    shutil.rmtree(dirs[1] / "cache")
    with serve(dirs[1], *fleet_args, env=weed.env()) as b:
        for card, original in zip(cards, first, strict=True):
            assert get(b, card).content == original.content
        assert metric(b, "ogproxy_renders_total") == 0
        assert object_hits(b) == len(cards)
        ready = httpx.get(b.base + "/readyz").json()
        assert ready["object_store"] == "ok" and ready["degraded"] is False
    assert len(bucket_objects(weed, store_url)) == len(cards)


def test_two_instances_racing_for_a_card_end_with_one_object(
    weed: Weed, store_url: str, fleet_args: tuple[str, ...], tmp_path: Path
) -> None:
    cards = [{"title": f"Raced card {i}"} for i in range(4)]
    with (
        serve_many([tmp_path / "a", tmp_path / "b"], *fleet_args, env=weed.env()) as (a, b),
        ThreadPoolExecutor(8) as pool,
    ):
        both = [(pool.submit(get, a, card), pool.submit(get, b, card)) for card in cards]
        answers = [(x.result(), y.result()) for x, y in both]
        renders = metric(a, "ogproxy_renders_total") + metric(b, "ogproxy_renders_total")
        assert len(cards) <= renders <= 2 * len(cards)
        wait_until(lambda: all(uploaded(s, 0)() for s in (a, b)), what="uploads")
        twice = sum(x.headers["x-cache"] == y.headers["x-cache"] == "MISS" for x, y in answers)
        conflicts = sum(metric(s, "ogproxy_object_store_upload_conflicts_total") for s in (a, b))
        assert conflicts == twice  # each card rendered twice lost one upload, no more
        objects = bucket_objects(weed, store_url)
        assert len(objects) == len(cards)
        for card, (x, _) in zip(cards, answers, strict=True):
            key = etag_key(x)
            [body] = [v for path, v in objects.items() if path.split("/")[-1].startswith(key)]
            # The loser now serves the winner's object, as the rest of the fleet will.
            assert get(a, card).content == get(b, card).content == body


def test_a_failing_store_costs_renders_never_answers(
    weed: Weed, store_url: str, tmp_path: Path
) -> None:
    proxy = FaultProxy(weed.ports["s3.port"])
    try:
        env = weed.env(proxy.endpoint)
        with (
            serve(tmp_path / "a", *ARGS, "--store", store_url, env=env) as a,
            ThreadPoolExecutor(6) as pool,
        ):
            proxy.set("500")
            cards = [{"title": f"During the outage {i}"} for i in range(6)]
            answers = list(pool.map(lambda card: get(a, card), cards))
            assert {r.headers["x-cache"] for r in answers} == {"MISS"}
            ready = httpx.get(a.base + "/readyz")
            assert ready.status_code == 200
            assert ready.json()["degraded"] is True and ready.json()["object_store"] == "open"
            assert metric(a, "ogproxy_object_store_breaker_open") == 1
            assert metric(a, 'ogproxy_cache_tier_lookups_total{result="error",tier="object"}') >= 1
            proxy.set("403")
            get(a, {"title": "Forbidden now"})
            proxy.set("pass")
            # The retried uploads (and the probe among them) close the breaker again, and
            # every acknowledged card reaches the bucket.
            wait_until(uploaded(a, len(cards) + 1), timeout=40, what="retried uploads")
            assert httpx.get(a.base + "/readyz").json()["object_store"] == "ok"
            assert metric(a, "ogproxy_object_store_breaker_opened_total") >= 1
            assert metric(a, "ogproxy_object_store_upload_failures_total") == 0
    finally:
        proxy.close()
    objects = bucket_objects(weed, store_url)
    assert len(objects) == len(cards) + 1
    for answer in answers:
        assert any(etag_key(answer) in path for path in objects)


def test_a_corrupted_object_is_rendered_again_and_replaced(
    weed: Weed, store_url: str, fleet_args: tuple[str, ...], tmp_path: Path
) -> None:
    card = {"title": "Bit rot"}
    with serve(tmp_path / "a", *fleet_args, env=weed.env()) as a:
        good = get(a, card).content
        wait_until(uploaded(a, 1), what="upload")
    [path] = bucket_objects(weed, store_url)

    async def corrupt() -> None:
        store = s3_store(store_url, weed.env())
        attributes = (await obstore.get_async(store, path)).attributes
        await obstore.put_async(store, path, good[:-100] + b"\0" * 100, attributes=attributes)

    asyncio.run(corrupt())
    with serve(tmp_path / "b", *fleet_args, env=weed.env()) as b:
        again = get(b, card)
        assert again.headers["x-cache"] == "MISS" and again.content == good
        assert metric(b, "ogproxy_object_store_corrupt_total") == 1
        wait_until(uploaded(b, 1), what="replacement upload")
    assert bucket_objects(weed, store_url) == {path: good}


@pytest.fixture
def own_weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """A server of its own, for a test that kills it."""
    server = Weed(tmp_path_factory.mktemp("own-weed"))
    server.start()
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop(kill=True)


def test_store_killed_mid_burst_loses_nothing_acknowledged(own_weed: Weed, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/killed"
    args = (*ARGS, "--store", url)
    cards = [{"title": f"Burst card {i}"} for i in range(12)]
    with serve(tmp_path / "a", *args, env=own_weed.env()) as a, ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(get, a, card) for card in cards]
        wait_until(lambda: sum(f.done() for f in pending) >= 3, what="first answers")
        own_weed.stop(kill=True)
        answers = [f.result() for f in pending]  # every request still answers
        own_weed.start()
        wait_until(uploaded(a, len(cards)), timeout=60, what="uploads after the restart")
        assert metric(a, "ogproxy_object_store_upload_failures_total") == 0
    with serve(tmp_path / "b", *args, env=own_weed.env()) as b:
        for card, answer in zip(cards, answers, strict=True):
            assert get(b, card).content == answer.content
        assert metric(b, "ogproxy_renders_total") == 0
