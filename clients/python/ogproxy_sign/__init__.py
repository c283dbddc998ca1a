"""Sign ogproxy Open Graph image URLs, and write the meta tags that put them on a page.

Only the standard library and itsdangerous: a Django, Flask or FastAPI site that signs
URLs needs nothing of the ogproxy server (no Playwright, no libvips).

The scheme (the ogproxy server imports it from here, so it is written down once): the
message is ``path + "?" + canonical_query``. The canonical query holds every parameter
except ``sig``: name and value UTF-8 and percent-encoded with only ``A-Z a-z 0-9 - . _ ~``
left as is (space is ``%20``, hex digits upper case), joined as ``name=value``, sorted by
encoded name then encoded value (plain ASCII order), joined with ``&``. The signature is
itsdangerous' ``Signer`` with the salt below, HMAC key derivation and SHA-256: URL-safe
base64, no padding, of ``HMAC-SHA256(HMAC-SHA256(secret, salt), message)``.

``check_params`` (or ``sign_url(..., check=True)``) refuses before signing what the server
refuses whatever the template: control characters, a title or subtitle too long, a
parameter given twice, no title, a query over 4 KiB. The server reads these limits from
here, and spec/vectors.json (``limits``) holds the cases every signer is tested on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import quote, unquote_to_bytes, urlsplit

from itsdangerous import Signer

__all__ = [
    "CONTROL_CHARACTERS",
    "DEFAULT_PATH",
    "MAX_QUERY_BYTES",
    "MAX_SUBTITLE",
    "MAX_TITLE",
    "MIN_SECRET_BYTES",
    "SALT",
    "SIG_PARAM",
    "LimitError",
    "canonical_query",
    "check_params",
    "meta_tags",
    "parse_query",
    "sign_url",
    "signature",
    "split_secret",
]
__version__ = "0.1.0"

SALT = "ogproxy.url.v1"
SIG_PARAM = "sig"
DEFAULT_PATH = "/og.png"
MIN_SECRET_BYTES = 16
MAX_TITLE = 200  # characters (code points), after trimming
MAX_SUBTITLE = 300
MAX_QUERY_BYTES = 4096  # the whole query, sig included; the server answers 414 beyond
# Control characters break layout and logs; tabs and newlines too (titles are one paragraph).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SIG_BYTES = len("&sig=") + 43
_WHITESPACE = " \t\n\r\x0b\x0c"
# The media type of each endpoint (/og.png, /og.jpg, ...), for og:image:type.
_MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}

Pairs = list[tuple[bytes, bytes]]
ParamsLike = Mapping[str, object] | Iterable[tuple[str, object]]
Secrets = str | bytes | Sequence[str | bytes]


def split_secret(raw: str) -> tuple[str, ...]:
    """The secrets in an ``OGPROXY_SECRET`` value, oldest first (the last one signs).

    The one rule, shared with the server and the JS, Go and PHP signers: comma-separated,
    each item trimmed of ASCII whitespace, empty items dropped.
    """
    return tuple(item for part in raw.split(",") if (item := part.strip(_WHITESPACE)))


def signer(secrets: Secrets) -> Signer:
    """itsdangerous' Signer for the scheme: signs with the last key, verifies with each.

    A string is read like ``OGPROXY_SECRET`` (``split_secret``); a sequence holds the keys
    themselves. Each key must be at least 16 bytes.
    """
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


def parse_query(raw: bytes | str) -> Pairs:
    """Split a raw query string into percent-decoded ``(name, value)`` byte pairs.

    ``+`` and ``%20`` decode alike, so a proxy that re-encodes a URL does not break it.
    Decoding works on bytes: a query that is not UTF-8 still parses.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    pairs: Pairs = []
    for part in raw.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[bytes, bytes]]) -> str:
    """The canonical form of decoded pairs (``sig`` excluded by the caller)."""
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def to_pairs(params: ParamsLike) -> Pairs:
    """``{"title": "Hi"}`` or ``[("tag", "a"), ("tag", "b")]`` as byte pairs; None is left out."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: Pairs = []
    for name, value in items:
        if value is None:
            continue
        if name == SIG_PARAM:
            raise ValueError("'sig' is reserved for the signature")
        pairs.append((str(name).encode(), str(value).encode()))
    return pairs


class LimitError(ValueError):
    """What the server would refuse: a parameter (400; ``param`` names it) or, with
    ``param`` None, a query too long (414)."""

    def __init__(self, param: str | None, problem: str) -> None:
        self.param = param
        super().__init__(f"Invalid parameter '{param}': {problem}" if param else problem)


def check_params(params: ParamsLike) -> None:
    """Raise LimitError for what the server refuses whatever the template.

    Every parameter but ``html``, normalised (NFC) and trimmed as the server does: no
    control characters, ``title`` at most 200 and ``subtitle`` at most 300 characters;
    no parameter twice; a title unless ``html`` is given; a signed query of at most 4 KiB.
    What depends on the template (its parameters, choices, image origins) is the
    server's to check (``ogproxy sign`` checks it all before printing a URL).
    """
    _check(to_pairs(params))


def _check(pairs: Pairs) -> None:
    seen: dict[str, str] = {}
    for raw_name, raw in pairs:
        name = raw_name.decode()
        if name in seen:
            raise LimitError(name, "given more than once")
        seen[name] = value = unicodedata.normalize("NFC", raw.decode()).strip()
        if name == "html":
            continue
        if CONTROL_CHARACTERS.search(value):
            raise LimitError(name, "contains control characters")
        limit = {"title": MAX_TITLE, "subtitle": MAX_SUBTITLE}.get(name)
        if limit is not None and len(value) > limit:
            raise LimitError(name, f"is {len(value)} characters long, at most {limit} allowed")
    if "html" not in seen and not seen.get("title"):
        raise LimitError("title", "is required" if "title" not in seen else "must not be empty")
    size = len(canonical_query(pairs)) + _SIG_BYTES
    if size > MAX_QUERY_BYTES:
        raise LimitError(
            None, f"Query string too long: {size} bytes signed, at most {MAX_QUERY_BYTES} allowed"
        )


def signature(secrets: Secrets, path: str, pairs: Pairs) -> str:
    """The ``sig`` of ``path`` with ``pairs``; with several secrets the last one signs."""
    message = f"{path}?{canonical_query(pairs)}"
    return signer(secrets).get_signature(message).decode("ascii")


def sign_url(
    base_url: str, secret: str | Sequence[str], params: ParamsLike, *, check: bool = False
) -> str:
    """Return ``base_url`` with the canonical query and its ``sig`` appended.

    ``base_url`` is the image endpoint (``https://og.example.com/og.png``); a bare origin
    gets ``/og.png``. Parameters whose value is ``None`` are left out. ``secret`` may be
    the value of ``OGPROXY_SECRET`` as it is: with several secrets the last one signs.
    ``check``: raise LimitError for what the server would refuse (``check_params``).
    """
    parts = urlsplit(base_url)
    if parts.query or parts.fragment:
        raise ValueError("base_url must not carry a query or fragment")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    base = base_url.rstrip("/") + DEFAULT_PATH if path != parts.path else base_url
    pairs = to_pairs(params)
    if check:
        _check(pairs)
    sig = signature(secret, path, pairs)
    return f"{base}?{canonical_query(pairs)}&{SIG_PARAM}={sig}"


def _size(image_url: str) -> tuple[int, int]:
    """The pixel size a signed URL asks for: width and height (1200x630 unless given)
    times scale."""
    given = {name.decode(): value for name, value in parse_query(urlsplit(image_url).query)}

    def number(name: str, default: int) -> int:
        text = given.get(name, b"").decode("utf-8", "replace").strip()
        return int(text) if text.isascii() and text.isdigit() else default

    scale = number("scale", 1)
    return number("width", 1200) * scale, number("height", 630) * scale


def meta_tags(
    image_url: str,
    *,
    width: int | None = None,
    height: int | None = None,
    media_type: str | None = None,
    alt: str | None = None,
) -> str:
    """``og:image`` and ``twitter:image`` tags (with size and type) for ``image_url``.

    The size is the URL's own (its ``width``, ``height`` and ``scale``; the server's
    1200x630 when it gives none) unless given; the media type follows the endpoint
    (``/og.png``, ``/og.jpg``, ``/og.webp``) unless given. Every value is HTML-escaped;
    mark the result safe in your template engine.
    """
    own_width, own_height = _size(image_url)
    suffix = "." + urlsplit(image_url).path.rpartition(".")[2].lower()
    kind = media_type or _MEDIA_TYPES.get(suffix, "image/png")
    url = escape(image_url, quote=True)
    tags = [
        f'<meta property="og:image" content="{url}">',
        f'<meta property="og:image:type" content="{escape(kind, quote=True)}">',
        f'<meta property="og:image:width" content="{int(width or own_width)}">',
        f'<meta property="og:image:height" content="{int(height or own_height)}">',
    ]
    if alt:
        tags.append(f'<meta property="og:image:alt" content="{escape(alt, quote=True)}">')
    tags += [
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:image" content="{url}">',
    ]
    return "\n".join(tags)
