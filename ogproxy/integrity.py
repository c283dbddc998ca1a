"""The one integrity check of stored bytes: cards on disk and in the bucket, and assets.

A card is stored with a MAC that binds its bytes to the cache key it is stored under and
to its media type: HMAC-SHA256 under a key derived from the signing secrets with a salt
of its own (``ogproxy.cache.v1``; itsdangerous' Signer, as for URLs). Every read checks
the MAC and that the bytes start like a file of the URL's format. Anything else is
dropped and rendered again, never served: damaged or truncated bytes, another card's
entry, another format's, an entry written by a deployment with other secrets, or one
written before this check. Write access to the cache is not enough to get a card
served; a signing secret is.

As for URLs, the last secret seals and every secret opens: adding a secret re-renders
nothing, and dropping one makes the cards sealed with it misses, each rendered (and
stored again) once.

A disk entry carries its MAC in front of the bytes (``seal``/``unseal``); an object,
which a CDN may serve as it is, carries it in its metadata (``tag``/``check``). Asset
bodies are stored under the SHA-256 of their bytes, and that address is their check
(``address``/``at_address``): it needs no key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from itsdangerous import Signer

from .formats import FORMATS, Format

SALT = "ogproxy.cache.v1"
TAG_SIZE = 43  # characters of unpadded base64url HMAC-SHA256


class CardSeal:
    """Seals and checks stored cards with the signing ``secrets`` (the last one seals)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        keys = [secret.encode() for secret in secrets]
        self._signer = Signer(keys, salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)

    def tag(self, key: str, fmt: Format, image: bytes) -> str:
        """The MAC of ``image`` stored as the card ``key`` in ``fmt``."""
        return self._signer.get_signature(_message(key, fmt, image)).decode("ascii")

    def check(self, key: str, fmt: Format, image: bytes, tag: str | bytes | None) -> bool:
        """Whether ``image`` is the card ``key`` in ``fmt``, as a secret of ours stored it."""
        return (
            tag is not None
            and FORMATS[fmt].matches(image)
            and self._signer.verify_signature(_message(key, fmt, image), tag)
        )

    def seal(self, key: str, fmt: Format, image: bytes) -> bytes:
        """The disk entry of ``image``: its MAC, then its bytes."""
        return self.tag(key, fmt, image).encode("ascii") + image

    def unseal(self, key: str, fmt: Format, entry: object) -> bytes | None:
        """The image in a disk entry, or None unless it is the card ``key`` in ``fmt``."""
        if not isinstance(entry, bytes) or len(entry) <= TAG_SIZE:
            return None
        image = entry[TAG_SIZE:]
        return image if self.check(key, fmt, image, entry[:TAG_SIZE]) else None


def _message(key: str, fmt: Format, image: bytes) -> bytes:
    # The key is hex and the media type has no newline: the prefix cannot be ambiguous.
    return f"{key}\n{FORMATS[fmt].media_type}\n".encode() + image


def address(body: bytes) -> str:
    """The content address of an asset body (SHA-256, hex)."""
    return hashlib.sha256(body).hexdigest()


def at_address(body: object, stated: str) -> bytes | None:
    """The body stored under ``stated``, or None if it is not the body with that address."""
    return body if isinstance(body, bytes) and address(body) == stated else None
