"""Signed URLs: the server's side of the scheme, checking signatures.

The scheme itself (canonical query, salt, HMAC) lives in the ``ogproxy_sign`` package
(clients/python), which sites that only sign install on their own; this module verifies
with the very same functions, so the two cannot drift.

Incoming queries are decoded before they are canonicalised, so ``+`` and ``%20`` for a
space, or ``%7e`` and ``~``, sign alike: a proxy or library that re-encodes the URL does
not break it. Decoding works on bytes, so a query that is not UTF-8 is still checked
(and refused) as a bad signature, never as a crash.

The signature itself has exactly one spelling: 43 characters of unpadded base64url
whose last character carries no stray bits. Padding, standard-alphabet ``+/``,
percent-escapes or junk that a lenient base64 decoder would skip are refused, so one
signed URL cannot be respelled into unboundedly many accepted ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes, urlsplit

from ogproxy_sign import (
    DEFAULT_PATH,
    SALT,
    Pairs,
    ParamsLike,
    canonical_query,
    parse_query,
    sign_url,
    signature,
    signer,
    split_secret,
)

from .errors import BadSignature

__all__ = [
    "DEFAULT_PATH",
    "SALT",
    "Pairs",
    "ParamsLike",
    "canonical_query",
    "canonical_spelling",
    "is_canonical",
    "parse_query",
    "sign_url",
    "signature",
    "verify_query",
    "verify_url",
]

# 32 bytes in 43 characters: the last one holds 4 bits, so its 2 low bits are zero.
_SIGNATURE = re.compile(rb"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def _unquote(part: bytes) -> bytes:
    return unquote_to_bytes(part.replace(b"+", b" "))


def _split(raw: bytes | str) -> Pairs:
    """``(name, value)`` pairs of a raw query, still percent-encoded."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return [(n, v) for n, _, v in (p.partition(b"=") for p in raw.split(b"&") if p)]


def _decode(raw_query: bytes | str) -> tuple[Pairs, bytes]:
    """The decoded pairs other than ``sig``, and ``sig`` as sent; BadSignature when ``sig``
    is missing, repeated or misspelled. What a signature covers depends on these alone."""
    pairs = [(_unquote(name), value) for name, value in _split(raw_query)]
    sigs = [value for name, value in pairs if name == b"sig"]  # as sent, not decoded
    if not sigs:
        raise BadSignature("no sig parameter")
    if len(sigs) > 1:
        raise BadSignature("sig given more than once")
    if not _SIGNATURE.fullmatch(sigs[0]):
        raise BadSignature("sig is not 43 characters of unpadded base64url")
    return [(name, _unquote(value)) for name, value in pairs if name != b"sig"], sigs[0]


def verify_query(path: str, raw_query: bytes | str, secrets: Sequence[str | bytes]) -> Pairs:
    """Check the ``sig`` of a raw query; return the other pairs, still as bytes.

    Raises BadSignature (403) for a missing, repeated, misspelled or wrong signature.
    Nothing else about the query is interpreted here.
    """
    rest, sig = _decode(raw_query)
    message = f"{path}?{canonical_query(rest)}".encode()
    if not signer(secrets).verify_signature(message, sig):
        raise BadSignature("signature does not match")
    return rest


def canonical_spelling(raw_query: bytes) -> bytes | None:
    """The query as ``sign_url`` spells it (``sig`` last), or None if it has no valid ``sig``.

    Two queries with the same canonical spelling verify alike: ``verify_query`` reads
    nothing of a query but its decoded pairs and its ``sig``, and so does this. That
    makes it safe for the fast-hit map to answer any spelling of a verified query.
    """
    try:
        rest, sig = _decode(raw_query)
    except BadSignature:
        return None
    return canonical_query(rest).encode() + b"&sig=" + sig


def is_canonical(raw_query: bytes, pairs: Pairs) -> bool:
    """True if a verified query is spelled exactly as ``sign_url`` spells it.

    ``pairs`` are what ``verify_query`` returned for it (cheaper than ``canonical_spelling``
    for the spelling nearly every request has).
    """
    body, sep, sig = raw_query.rpartition(b"&sig=")
    return bool(sep) and len(sig) == 43 and body == canonical_query(pairs).encode()


def verify_url(url: str, secrets: str | Sequence[str]) -> dict[str, str]:
    """Verify a signed URL; return its parameters (without ``sig``) as a dict.

    Raises BadSignature when the signature is missing or wrong. Repeated parameters keep
    their last value here; the server refuses them.
    """
    parts = urlsplit(url)
    keys = list(split_secret(secrets)) if isinstance(secrets, str) else list(secrets)
    pairs = verify_query(parts.path or "/", parts.query, keys)
    return {
        name.decode("utf-8", "replace"): value.decode("utf-8", "replace") for name, value in pairs
    }
