"""The one integrity check that disk entries, objects and assets go through."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from ogproxy import integrity
from ogproxy.formats import Format
from ogproxy.integrity import CardSeal

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
KEY, OTHER_KEY = "a" * 64, "b" * 64
OURS = CardSeal(["old-secret-0123456789", "new-secret-0123456789"])


def test_a_sealed_card_opens_to_itself_and_the_newest_secret_seals() -> None:
    entry = OURS.seal(KEY, "png", PNG)
    assert OURS.unseal(KEY, "png", entry) == PNG
    assert entry[: integrity.TAG_SIZE].decode() == OURS.tag(KEY, "png", PNG)
    assert CardSeal(["new-secret-0123456789"]).unseal(KEY, "png", entry) == PNG
    assert CardSeal(["old-secret-0123456789"]).unseal(KEY, "png", entry) is None


def test_every_secret_opens_what_it_sealed() -> None:
    """Rotation: cards sealed before a new secret was added still open."""
    before = CardSeal(["old-secret-0123456789"]).seal(KEY, "png", PNG)
    assert OURS.unseal(KEY, "png", before) == PNG


@pytest.mark.parametrize(
    ("key", "fmt", "seal"),
    [
        (OTHER_KEY, "png", OURS),  # another card's entry
        (KEY, "webp", OURS),  # another format's (and not its bytes)
        (KEY, "png", CardSeal(["someone-elses-secret-0123"])),  # another deployment's
    ],
)
def test_a_card_opens_only_as_itself(key: str, fmt: Format, seal: CardSeal) -> None:
    assert seal.unseal(key, fmt, OURS.seal(KEY, "png", PNG)) is None


def test_the_bytes_must_be_the_format_even_with_a_good_mac() -> None:
    """A JPEG sealed as a PNG (a bug of ours, say) is not served as one."""
    assert OURS.unseal(KEY, "png", OURS.seal(KEY, "png", JPEG)) is None
    assert not OURS.check(KEY, "png", JPEG, OURS.tag(KEY, "png", JPEG))
    assert OURS.unseal(KEY, "jpeg", OURS.seal(KEY, "jpeg", JPEG)) == JPEG


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-1],  # truncated
        lambda s: s[:100] + bytes([s[100] ^ 1]) + s[101:],  # one bit flipped in the value
        lambda s: bytes([s[0] ^ 1]) + s[1:],  # one bit flipped in the MAC
        lambda s: s + b"\0",  # grown
        lambda s: s[: integrity.TAG_SIZE],  # a MAC and no value
        lambda s: b"",
        # The format before the MAC: a BLAKE2b digest of the bytes, then the bytes.
        lambda s: hashlib.blake2b(PNG, digest_size=16).digest() + PNG,
    ],
)
def test_a_damaged_or_old_entry_does_not_open(damage: Callable[[bytes], bytes]) -> None:
    assert OURS.unseal(KEY, "png", damage(OURS.seal(KEY, "png", PNG))) is None


@pytest.mark.parametrize("entry", [None, "a string", 42, (b"a", b"b"), PNG])
def test_what_is_not_a_sealed_entry_does_not_open(entry: object) -> None:
    assert OURS.unseal(KEY, "png", entry) is None


def test_a_mac_kept_apart_as_in_object_metadata() -> None:
    tag = OURS.tag(KEY, "png", PNG)
    assert len(tag) == integrity.TAG_SIZE and OURS.check(KEY, "png", PNG, tag)
    assert OURS.check(KEY, "png", PNG, tag.encode())
    assert not OURS.check(KEY, "png", PNG[:-1], tag)
    for bad in (None, "", "not base64 !", tag[:-2], "é" * 43):
        assert not OURS.check(KEY, "png", PNG, bad)


def test_an_asset_body_is_checked_against_its_address() -> None:
    address = integrity.address(PNG)
    assert address == hashlib.sha256(PNG).hexdigest()
    assert integrity.at_address(PNG, address) == PNG
    for bad in (PNG[:-1], PNG + b"\0", None, "text", b""):
        assert integrity.at_address(bad, address) is None
