"""Signed URLs: the server's side of the scheme, checking signatures.

The scheme itself (canonical query, salt, HMAC) lives in the ``ogproxy_sign`` package
(clients/python), which sites that only sign install on their own; this module verifies
with the very same functions, so the two cannot drift.

Incoming queries are decoded before they are canonicalised, so ``+`` and ``%20`` for a
space, or ``%7e`` and ``~``, sign alike: a proxy or library that re-encodes the URL does
not break it. Decoding works on bytes, so a query that is not UTF-8 is still checked
(and refused) as a bad signature, never as a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

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
)

from .errors import BadSignature

__all__ = [
    "DEFAULT_PATH",
    "SALT",
    "SIG_PARAM",
    "Pairs",
    "ParamsLike",
    "canonical_query",
    "parse_query",
    "sign_url",
    "signature",
    "verify_query",
    "verify_url",
]


def verify_query(path: str, raw_query: bytes | str, secrets: Sequence[str | bytes]) -> Pairs:
    """Check the ``sig`` of a raw query; return the other pairs, still as bytes.

    Raises BadSignature (403) for a missing, repeated or wrong signature. Nothing else
    about the query is interpreted here.
    """
    pairs = parse_query(raw_query)
    sigs = [value for name, value in pairs if name == b"sig"]
    if not sigs:
        raise BadSignature("no sig parameter")
    if len(sigs) > 1:
        raise BadSignature("sig given more than once")
    rest = [(name, value) for name, value in pairs if name != b"sig"]
    message = f"{path}?{canonical_query(rest)}".encode()
    if not signer(secrets).verify_signature(message, sigs[0]):
        raise BadSignature("signature does not match")
    return rest


def verify_url(url: str, secrets: str | Sequence[str]) -> dict[str, str]:
    """Verify a signed URL; return its parameters (without ``sig``) as a dict.

    Raises BadSignature when the signature is missing or wrong. Repeated parameters keep
    their last value here; the server refuses them.
    """
    parts = urlsplit(url)
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    pairs = verify_query(parts.path or "/", parts.query, keys)
    return {
        name.decode("utf-8", "replace"): value.decode("utf-8", "replace") for name, value in pairs
    }
