"""Signed URLs: the canonical query, and HMAC-SHA256 signatures over it.

The message is ``path + "?" + canonical_query``. The canonical query holds every
parameter except ``sig``: name and value UTF-8 and percent-encoded with only
``A-Z a-z 0-9 - . _ ~`` left as is (space is ``%20``, hex digits upper case), joined as
``name=value``, sorted by encoded name then encoded value (plain ASCII order), joined with
``&``. The signature is itsdangerous' ``Signer`` with the salt below, HMAC key
derivation and SHA-256: URL-safe base64, no padding, of
``HMAC-SHA256(HMAC-SHA256(secret, salt), message)``.

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

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, unquote_to_bytes, urlsplit

from itsdangerous import Signer

from .errors import BadSignature
from .keys import MIN_SECRET_BYTES, split_secret

SALT = "ogproxy.url.v1"
SIG_PARAM = "sig"
DEFAULT_PATH = "/og.png"

# 32 bytes in 43 characters: the last one holds 4 bits, so its 2 low bits are zero.
_SIGNATURE = re.compile(rb"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")

Pairs = list[tuple[bytes, bytes]]
ParamsLike = Mapping[str, object] | Iterable[tuple[str, object]]


def _signer(secrets: str | bytes | Sequence[str | bytes]) -> Signer:
    """A string is read like ``OGPROXY_SECRET`` (keys.py: comma-separated, trimmed, the
    last signs); a sequence holds the keys themselves."""
    # itsdangerous signs with the last key and verifies with each, newest first.
    if isinstance(secrets, str):
        items: list[str | bytes] = list(split_secret(secrets))
    else:
        items = [secrets] if isinstance(secrets, bytes) else list(secrets)
    keys = [k.encode() if isinstance(k, str) else k for k in items]
    if not keys or any(len(k) < MIN_SECRET_BYTES for k in keys):
        raise ValueError(f"a signing secret must be at least {MIN_SECRET_BYTES} bytes")
    return Signer(keys, salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)


def _encode(part: bytes) -> str:
    return quote(part, safe="")


def _unquote(part: bytes) -> bytes:
    return unquote_to_bytes(part.replace(b"+", b" "))


def _split(raw: bytes | str) -> Pairs:
    """``(name, value)`` pairs of a raw query, still percent-encoded."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    pairs: Pairs = []
    for part in raw.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((name, value))
    return pairs


def parse_query(raw: bytes | str) -> Pairs:
    """Split a raw query string into percent-decoded ``(name, value)`` byte pairs."""
    return [(_unquote(name), _unquote(value)) for name, value in _split(raw)]


def canonical_query(pairs: Iterable[tuple[bytes, bytes]]) -> str:
    """The canonical form of decoded pairs (``sig`` excluded by the caller)."""
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _to_pairs(params: ParamsLike) -> Pairs:
    items = params.items() if isinstance(params, Mapping) else params
    pairs: Pairs = []
    for name, value in items:
        if value is None:
            continue
        if name == SIG_PARAM:
            raise ValueError("'sig' is reserved for the signature")
        pairs.append((str(name).encode(), str(value).encode()))
    return pairs


def signature(secrets: str | bytes | Sequence[str | bytes], path: str, pairs: Pairs) -> str:
    message = f"{path}?{canonical_query(pairs)}"
    return _signer(secrets).get_signature(message).decode("ascii")


def sign_url(base_url: str, secret: str | Sequence[str], params: ParamsLike) -> str:
    """Return ``base_url`` with the canonical query and its ``sig`` appended.

    ``base_url`` is the image endpoint (``https://og.example.com/og.png``); a bare origin
    gets ``/og.png``. Parameters whose value is ``None`` are left out. ``secret`` may be
    the value of ``OGPROXY_SECRET`` as it is: with several secrets the last one signs.
    """
    parts = urlsplit(base_url)
    if parts.query or parts.fragment:
        raise ValueError("base_url must not carry a query or fragment")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    base = base_url.rstrip("/") + DEFAULT_PATH if path != parts.path else base_url
    pairs = _to_pairs(params)
    sig = signature(secret, path, pairs)
    return f"{base}?{canonical_query(pairs)}&{SIG_PARAM}={sig}"


def verify_query(path: str, raw_query: bytes | str, secrets: Sequence[str | bytes]) -> Pairs:
    """Check the ``sig`` of a raw query; return the other pairs, still as bytes.

    Raises BadSignature (403) for a missing, repeated or wrong signature. Nothing else
    about the query is interpreted here.
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
    if not _signer(secrets).verify_signature(message, sigs[0]):
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
