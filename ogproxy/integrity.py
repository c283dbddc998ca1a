"""The one integrity check of cached bytes: disk entries, objects in the bucket, assets.

Every cache tier stores a digest with the bytes and checks it on every read; bytes that
fail are dropped and count as a miss (rendered or fetched again), never served. Disk
and asset entries carry it in front of the bytes (``seal``/``unseal``); an object, which
a CDN may serve as it is, carries it in its metadata (``digest``/``intact``).

BLAKE2b of 16 bytes catches truncated, torn and bit-flipped entries. It is not a key:
anyone who can write to the cache can also write a matching digest.
"""

from __future__ import annotations

import hashlib
import hmac

SIZE = 16  # bytes of digest


def digest(value: bytes) -> bytes:
    """The digest stored with ``value``."""
    return hashlib.blake2b(value, digest_size=SIZE).digest()


def intact(value: bytes, stated: bytes | str | None) -> bool:
    """Whether ``value`` matches the digest stored with it (bytes, or hex as in metadata)."""
    if isinstance(stated, str):
        try:
            stated = bytes.fromhex(stated)
        except ValueError:
            return False
    return stated is not None and hmac.compare_digest(digest(value), stated)


def seal(value: bytes) -> bytes:
    """``value`` with its digest in front, as stored."""
    return digest(value) + value


def unseal(sealed: object) -> bytes | None:
    """The value inside a stored entry, or None if it is not intact (or not an entry)."""
    if not isinstance(sealed, bytes) or len(sealed) <= SIZE:
        return None
    value = sealed[SIZE:]
    return value if intact(value, sealed[:SIZE]) else None
