"""Any spelling of a verified URL is a fast hit; nothing else is (hits.py, signing.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

import ogproxy.app
import ogproxy.hits
from ogproxy.errors import BadSignature
from ogproxy.signing import canonical_spelling, verify_query
from tests.conftest import Fake
from tests.support.cards import signed

pytestmark = pytest.mark.anyio

PARAMS = {"title": "Hello world", "subtitle": "a b+c", "template": "gradient"}


def spellings(url: str) -> list[str]:
    """Other spellings of ``url``'s query that verify alike."""
    query = urlsplit(url).query
    parts = query.split("&")
    return [
        "&".join(reversed(parts)),  # another order
        query.replace("%20", "+"),  # + for a space
        "&" + query + "&&",  # empty pairs
        query.replace("title=", "%74itle="),  # an escaped name
    ]


def refuse_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on a request that reaches the signature check fails loudly."""

    def verify(*args: object) -> None:
        raise AssertionError("took the full request path")

    monkeypatch.setattr(ogproxy.app, "verify_query", verify)


async def test_every_spelling_of_a_served_card_is_answered_from_the_fast_path(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = signed(PARAMS)
    first = await fake.client.get(url)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    refuse_full_path(monkeypatch)
    for query in spellings(url):
        answer = await fake.client.get("/og.png?" + query)
        assert answer.status_code == 200, query
        assert answer.headers["x-cache"] == "HIT" and answer.content == first.content
    assert len(fake.service.known) == 1  # one entry per card, whatever the spellings


async def test_a_respelled_hit_answers_as_the_canonical_one_does(fake: Fake) -> None:
    url = signed(PARAMS)
    assert (await fake.client.get(url)).headers["x-cache"] == "MISS"
    canonical = await fake.client.get(url)
    for query in spellings(url):
        answer = await fake.client.get("/og.png?" + query)
        assert answer.content == canonical.content, query
        assert _headers(answer) == _headers(canonical), query


def _headers(answer: httpx.Response) -> list[tuple[str, str]]:
    """Every header but the request's own id."""
    return [(n, v) for n, v in answer.headers.multi_items() if n != "x-request-id"]


async def test_a_spelling_seen_before_is_not_canonicalised_again(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # canonical_spelling costs ~20 us, seven times a whole fast hit (hits.py)
    url = signed(PARAMS)
    assert (await fake.client.get(url)).status_code == 200
    calls: list[bytes] = []

    def counted(query: bytes) -> bytes | None:
        calls.append(query)
        return canonical_spelling(query)

    monkeypatch.setattr(ogproxy.hits, "canonical_spelling", counted)
    other = spellings(url)[0]
    for _ in range(3):
        answer = await fake.client.get("/og.png?" + other)
        assert answer.headers["x-cache"] == "HIT"
    assert calls == [other.encode()]


async def test_a_card_first_asked_in_another_spelling_is_remembered_canonically(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = signed(PARAMS)
    other = spellings(url)[0]
    assert (await fake.client.get("/og.png?" + other)).headers["x-cache"] == "MISS"
    refuse_full_path(monkeypatch)
    assert (await fake.client.get(url)).headers["x-cache"] == "HIT"
    assert len(fake.service.known) == 1


async def test_a_changed_value_under_a_known_signature_is_still_refused(fake: Fake) -> None:
    url = signed(PARAMS)
    assert (await fake.client.get(url)).status_code == 200
    query = urlsplit(url).query
    for forged in (
        query.replace("Hello", "Hellp"),
        query.replace("template=gradient", "template=default"),
        query + "&extra=1",
        query.replace("title=", "title=x&title="),
        query + "&sig=" + query.rpartition("sig=")[2],  # sig twice
    ):
        answer = await fake.client.get("/og.png?" + forged)
        assert answer.status_code in (400, 403), forged
    assert fake.renderer.renders == 1


def test_canonical_spelling_is_the_signers_and_needs_one_valid_sig() -> None:
    url = signed(PARAMS)
    query = urlsplit(url).query.encode()
    assert canonical_spelling(query) == query
    for other in spellings(url):
        assert canonical_spelling(other.encode()) == query
    assert canonical_spelling(b"title=x") is None
    assert canonical_spelling(b"title=x&sig=short") is None
    sig = query.rpartition(b"sig=")[2]
    assert canonical_spelling(b"sig=" + sig + b"&sig=" + sig) is None
    with pytest.raises(BadSignature):
        verify_query("/og.png", b"title=x", ["s" * 20])
