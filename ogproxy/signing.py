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
    SIG_PARAM,
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
    "SIG_PARAM",
    "Pairs",
    "ParamsLike",
    "canonical_query",
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


def verify_query(path: str, raw_query: bytes | str, secrets: Sequence[str | bytes]) -> Pairs:
    """Check the ``sig`` of a raw query; return the other pairs, still as bytes.

    Raises BadSignature (403) for a missing, repeated, misspelled or wrong signature.
    Nothing else about the query is interpreted here.
    """
    pairs = [(_unquote(name), value) for name, value in _split(raw_query)]
    sigs = [value for name, value in pairs if name == b"sig"]  # as sent, not decoded
    if not sigs:
        raise BadSignature("no sig parameter")
    if len(sigs) > 1:
        raise BadSignature("sig given more than once")
    if not _SIGNATURE.fullmatch(sigs[0]):
        raise BadSignature("sig is not 43 characters of unpadded base64url")
    rest = [(name, _unquote(value)) for name, value in pairs if name != b"sig"]
    message = f"{path}?{canonical_query(rest)}".encode()
    if not signer(secrets).verify_signature(message, sigs[0]):
        raise BadSignature("signature does not match")
    return rest


def is_canonical(raw_query: bytes, pairs: Pairs) -> bool:
    """True if a verified query is spelled exactly as ``sign_url`` spells it.

    ``pairs`` are what ``verify_query`` returned for it. Of all the spellings that verify
    (``+`` or ``%20``, extra ``&``, escaped names), only this one is worth remembering.
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
