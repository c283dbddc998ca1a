"""The one rule for signing secrets, shared by the server, the CLI and every signer.

``OGPROXY_SECRET`` is a comma-separated list, newest last: each item is trimmed of ASCII
whitespace (space, tab, CR, LF, VT, FF) and empty items are dropped; the last one signs
and all of them verify. Each must be at least 16 bytes of UTF-8. The JS, Go and PHP
signers in clients/ apply the same rule to the secret they are given, so the value of
``OGPROXY_SECRET`` can be handed to any of them as it is (spec/vectors.json holds
cases). A secret that passes but looks guessable (little entropy in its characters)
gets a warning, not a refusal: it is the operator's to replace.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

from ogproxy_sign import MIN_SECRET_BYTES, split_secret

from .errors import ConfigError

__all__ = ["MIN_SECRET_BYTES", "check_secrets", "estimated_bits", "split_secret"]

# Below this many bits (length x the entropy of the secret's own character mix) a
# secret gets a warning: 16 random base64 characters score ~60, `aaaa...` 0.
WEAK_BITS = 48

log = logging.getLogger("ogproxy")


def check_secrets(secrets: tuple[str, ...], setting: str = "OGPROXY_SECRET") -> None:
    """ConfigError naming ``setting`` unless every secret is long enough; warn if weak."""
    if not secrets:
        raise ConfigError(f"{setting}: no secret in it (comma-separated, the last one signs)")
    for n, secret in enumerate(secrets, 1):
        which = f"secret {n} of {len(secrets)}" if len(secrets) > 1 else "the secret"
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{setting}: {which} is shorter than {MIN_SECRET_BYTES} bytes "
                "(make one with `openssl rand -base64 32`)"
            )
        bits = estimated_bits(secret)
        if bits < WEAK_BITS:
            log.warning(
                "%s: %s looks guessable (~%d bits); `openssl rand -base64 32` gives 256",
                setting,
                which,
                bits,
            )


def estimated_bits(secret: str) -> int:
    """Length times the Shannon entropy of the secret's own characters: a rough bound
    that catches repeats and tiny alphabets, not dictionary words."""
    counts = Counter(secret)
    per_char = -sum(c / len(secret) * math.log2(c / len(secret)) for c in counts.values())
    return round(per_char * len(secret))
