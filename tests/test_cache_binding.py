"""A stored card is bound to its cache key and its format, on disk and in the bucket.

A swapped, foreign or truncated entry is never served: the card is rendered again and
the entry replaced. Each case runs the HTTP app on the fake renderer, one app (so one
empty memory tier) per step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import diskcache
import httpx
import obstore
import pytest

from ogproxy.objectstore import s3_store
from tests.support.cards import SECRET, make_settings, png_image, running, signed
from tests.support.fake import FakeRenderer
from tests.support.s3server import Weed, bucket_objects

pytestmark = pytest.mark.anyio

CARD, OTHER = {"title": "Bound card"}, {"title": "Another card"}
JPEG_BASE = "http://ogproxy.test/og.jpeg"
OTHER_SECRET = "another-deployment-secret-0123"  # a deployment that shares the cache
CASES = ["swapped", "jpeg under png", "another secret", "truncated"]


@dataclass
class Step:
    answers: list[httpx.Response]
    renders: int
    rejected: dict[str, float]  # ogproxy_cache_rejected_total by tier


def _rejected(exposition: bytes) -> dict[str, float]:
    found = {}
    for line in exposition.decode().splitlines():
        if line.startswith('ogproxy_cache_rejected_total{tier="'):
            name, value = line.rsplit(" ", 1)
            found[name.split('"')[1]] = float(value)
    return found


async def step(cache: Path, *urls: str, secret: str = SECRET, store: str | None = None) -> Step:
    """GET ``urls`` in order on a fresh app over ``cache`` (and the bucket ``store``)."""
    settings = make_settings(cache, secrets=(secret,), store=store)
    async with running(settings, FakeRenderer()) as (service, client):
        answers = [await client.get(url) for url in urls]
        for answer in answers:
            assert answer.status_code == 200, answer.text
        rejected = _rejected(service.metrics.exposition())
        renders = service.renderer.renders
    return Step(answers, renders, rejected)


def key_of(answer: httpx.Response) -> str:
    """The ETag names the first 40 hex digits of the content address."""
    return str(answer.headers["etag"].strip('"'))


def _full_key(raw: diskcache.Cache, prefix: str) -> str:
    [key] = [k for k in raw if str(k).startswith(prefix)]
    return str(key)


async def test_a_disk_entry_bound_to_another_card_is_rendered_again_and_replaced(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    url, other_url = signed(CARD), signed(OTHER)
    first = await step(cache, url, other_url)
    with diskcache.Cache(str(cache)) as raw:  # the two entries swapped, each intact
        mine, theirs = (_full_key(raw, key_of(a)) for a in first.answers)
        raw[mine], raw[theirs] = raw[theirs], raw[mine]
    again = await step(cache, url, other_url)
    assert [a.headers["x-cache"] for a in again.answers] == ["MISS", "MISS"]
    assert [a.content for a in again.answers] == [a.content for a in first.answers]
    assert again.renders == 2 and again.rejected["disk"] == 2
    replaced = await step(cache, url, other_url)
    assert [a.headers["x-cache"] for a in replaced.answers] == ["HIT", "HIT"]
    assert [a.content for a in replaced.answers] == [a.content for a in first.answers]
    assert replaced.renders == 0 and replaced.rejected["disk"] == 0


@pytest.mark.parametrize("case", ["jpeg under png", "another secret", "truncated"])
async def test_a_foreign_or_damaged_disk_entry_is_rendered_again_and_replaced(
    tmp_path: Path, case: str
) -> None:
    cache = tmp_path / "cache"
    url = signed(CARD)
    first = await step(cache, url)
    if case == "jpeg under png":
        await step(cache, signed(CARD, base=JPEG_BASE))
    elif case == "another secret":  # the same card, stored by another deployment
        await step(tmp_path / "theirs", signed(CARD, OTHER_SECRET), secret=OTHER_SECRET)
    with (
        diskcache.Cache(str(cache)) as raw,
        diskcache.Cache(str(tmp_path / "theirs")) as theirs,
    ):
        key = _full_key(raw, key_of(first.answers[0]))
        if case == "jpeg under png":
            [jpeg] = [k for k in raw if k != key and not str(k).startswith("ogproxy-lock:")]
            raw[key] = raw[jpeg]
        elif case == "another secret":
            assert key in theirs  # the cache key does not depend on the secret
            raw[key] = theirs[key]
        else:
            raw[key] = raw[key][: len(raw[key]) // 2]
    again = await step(cache, url)
    [answer] = again.answers
    assert answer.headers["x-cache"] == "MISS" and answer.content == first.answers[0].content
    assert png_image(answer.content).format == "PNG"
    assert again.renders == 1 and again.rejected["disk"] == 1
    replaced = await step(cache, url)
    assert replaced.answers[0].headers["x-cache"] == "HIT" and replaced.renders == 0
    assert replaced.answers[0].content == first.answers[0].content


# The same against the bucket: every step has an empty disk of its own, so a card comes
# from the object store or from a render.


@pytest.fixture
def aws(weed: Weed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server reads the store's credentials and endpoint from the environment."""
    for name, value in weed.env().items():
        monkeypatch.setenv(name, value)


def _object_path(objects: dict[str, bytes], answer: httpx.Response) -> str:
    [path] = [p for p in objects if p.rsplit("/", 1)[-1].startswith(key_of(answer))]
    return path


async def _replace_object(url: str, env: dict[str, str], path: str, source: str) -> None:
    """Put the object at ``source`` (bytes and metadata) at ``path``."""
    store = s3_store(url, env)
    got = await obstore.get_async(store, source)
    await obstore.put_async(
        store, path, bytes(await got.bytes_async()), attributes=dict(got.attributes)
    )


@pytest.mark.parametrize("case", CASES)
async def test_a_swapped_foreign_or_truncated_object_is_never_served(
    weed: Weed, store_url: str, aws: None, tmp_path: Path, case: str
) -> None:
    url = signed(CARD)
    other = {
        "swapped": signed(OTHER),
        "jpeg under png": signed(CARD, base=JPEG_BASE),
    }.get(case)
    secret = OTHER_SECRET if case == "another secret" else SECRET
    first = await step(
        tmp_path / "a", *([signed(CARD, secret)] + ([other] if other else [])),
        secret=secret, store=store_url,
    )  # fmt: skip
    env = weed.env()
    objects = await asyncio.to_thread(bucket_objects, weed, store_url, False)
    path = _object_path(objects, first.answers[0])
    store = s3_store(store_url, env)
    if other is not None:  # the other card's object (bytes and metadata) under this key
        other_path = _object_path(objects, first.answers[1])
        await _replace_object(store_url, env, path, other_path)
    elif case == "truncated":
        got = await obstore.get_async(store, path)
        body = bytes(await got.bytes_async())
        await obstore.put_async(store, path, body[:-100], attributes=dict(got.attributes))
    again = await step(tmp_path / "b", url, store=store_url)
    [answer] = again.answers
    assert answer.headers["x-cache"] == "MISS" and png_image(answer.content).format == "PNG"
    assert again.renders == 1 and again.rejected["object"] == 1
    # The object was replaced by the render (the app drained its upload on the way out).
    assert (await asyncio.to_thread(bucket_objects, weed, store_url))[path] == answer.content
    replaced = await step(tmp_path / "c", url, store=store_url)
    assert replaced.answers[0].headers["x-cache"] == "HIT" and replaced.renders == 0
    assert replaced.answers[0].content == answer.content
