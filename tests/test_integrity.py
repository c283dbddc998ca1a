"""The one integrity check that disk entries, objects and assets go through."""

from __future__ import annotations

import hashlib

import pytest

from ogproxy import integrity

VALUE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_a_sealed_value_opens_to_itself() -> None:
    assert integrity.unseal(integrity.seal(VALUE)) == VALUE
    # The format on disk: BLAKE2b-128 of the bytes, then the bytes (entries written
    # before the check moved here still open).
    assert integrity.seal(VALUE) == hashlib.blake2b(VALUE, digest_size=16).digest() + VALUE


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-1],  # truncated
        lambda s: s[:100] + bytes([s[100] ^ 1]) + s[101:],  # one bit flipped in the value
        lambda s: bytes([s[0] ^ 1]) + s[1:],  # one bit flipped in the digest
        lambda s: s + b"\0",  # grown
        lambda s: s[:16],  # a digest and no value
        lambda s: b"",
    ],
)
def test_a_damaged_entry_does_not_open(damage: object) -> None:
    assert callable(damage)
    assert integrity.unseal(damage(integrity.seal(VALUE))) is None


@pytest.mark.parametrize("entry", [None, "a string", 42, (b"a", b"b"), VALUE])
def test_what_is_not_a_sealed_entry_does_not_open(entry: object) -> None:
    assert integrity.unseal(entry) is None


def test_a_digest_kept_apart_in_hex_or_bytes() -> None:
    stated = integrity.digest(VALUE)
    assert integrity.intact(VALUE, stated)
    assert integrity.intact(VALUE, stated.hex())
    assert not integrity.intact(VALUE[:-1], stated.hex())
    assert not integrity.intact(VALUE, stated[:-1])
    for bad in (None, "", "not hex", stated.hex()[:-2]):
        assert not integrity.intact(VALUE, bad)
