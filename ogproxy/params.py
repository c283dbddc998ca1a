"""Parse and bound-check the parameters of a verified request (query or JSON body)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

# The limits that hold whatever the template (the title's and subtitle's length, control
# characters, the whole query's size: 414 beyond) are the signer's, which checks them
# before it signs if asked; spec/vectors.json (`limits`) holds the cases every signer and
# the server are tested on.
from ogproxy_sign import CONTROL_CHARACTERS as _CONTROL
from ogproxy_sign import MAX_QUERY_BYTES as MAX_QUERY_BYTES
from ogproxy_sign import MAX_SUBTITLE as MAX_SUBTITLE
from ogproxy_sign import MAX_TITLE as MAX_TITLE

from .errors import InvalidParam
from .formats import Format

MAX_EXTRA = 200  # a template's own text parameters (author, ...)
MAX_IMAGE_URL = 2048  # avatar/logo: http(s) URL (data: URLs are bounded by the request size)
MAX_HTML = 512 * 1024  # a custom document (POST; a GET query stays under 4 KiB anyway)
SIZE_RANGE = (200, 2400)  # width and height, CSS pixels
SCALES = (1, 2)  # device pixel ratio: 2 for retina
# Pixels of one output image (width*scale x height*scale): 4096x4096. Every common OG
# size fits, 2400x1260 at scale 2 too; 4800x4800 (2400 at scale 2) does not.
MAX_OUTPUT_PIXELS = 4096 * 4096
# Bytes of one encoded image: the smallest limit a platform publishes for a shared image
# (X and LinkedIn: 5 MB; Facebook: 8 MB), in decimal megabytes, the stricter reading. A
# lossless PNG over it is encoded again with a palette (cards.py); a card that still does
# not fit is refused (422) and not stored: a random-pixel 4800x4800 PNG was 68.9 MB.
MAX_OUTPUT_BYTES = 5_000_000
MAX_OUTPUT_NAME = "5 MB"  # as messages and the README say it

_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_BOOLEANS = {"1": True, "true": True, "0": False, "false": False}

CORE = ("title", "subtitle", "template", "accentColor", "html", "v")
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
OUTPUT = ("palette", "width", "height", "scale", "quality")


@dataclass(frozen=True)
class Output:
    """What a render produces; part of the cache key."""

    width: int = 1200
    height: int = 630
    format: Format = "png"
    scale: int = 1  # device pixel ratio: the image is width*scale x height*scale pixels
    palette: bool = False  # PNG: 256 colours instead of lossless
    quality: int = 90  # JPEG and WebP

    def as_format(self, fmt: Format) -> Output:
        """These defaults for one format: a palette applies to PNG only."""
        return replace(self, format=fmt, palette=self.palette and fmt == "png")


@dataclass(frozen=True)
class ParamSpec:
    """A template's own parameter: ``text``, ``image`` (a URL, inlined) or one of ``choices``."""

    name: str
    kind: Literal["text", "image", "choice"] = "text"
    choices: tuple[str, ...] = ()

    @property
    def default(self) -> str:
        return self.choices[0] if self.choices else ""


@dataclass(frozen=True)
class TemplateSpec:
    """What a request may say about a template: its default accent and its own parameters."""

    accent_color: str
    params: tuple[ParamSpec, ...] = ()


@dataclass(frozen=True)
class CardParams:
    """Normalised parameters of one card: what the template sees and the cache key covers."""

    template: str
    title: str
    subtitle: str
    accent_color: str
    extra: tuple[tuple[str, str], ...] = field(default=())  # the template's own parameters
    html: str | None = None  # a whole custom document instead of a template
    version: str = ""  # `v`: bumped by signers to give a changed template new URLs

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def image_names(card: CardParams, spec: TemplateSpec) -> set[str]:
    """The card's parameters that hold an image URL the server fetches and inlines
    (none when a whole ``html`` document replaces the template)."""
    if card.html is not None:
        return set()
    return {p.name for p in spec.params if p.kind == "image"}


def text(name: str, raw: bytes | str, limit: int, *, required: bool) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidParam(name, "is not valid UTF-8") from None
    value = unicodedata.normalize("NFC", raw).strip()
    if _CONTROL.search(value):
        raise InvalidParam(name, "contains control characters")
    if required and not value:
        raise InvalidParam(name, "must not be empty")
    if len(value) > limit:
        raise InvalidParam(name, f"is {len(value)} characters long, at most {limit} allowed")
    return value


def normalise_color(name: str, raw: str) -> str:
    if not _COLOR.match(raw):
        raise InvalidParam(name, f"{raw[:20]!r} is not a colour like #rgb or #rrggbb")
    hexdigits = raw[1:].lower()
    if len(hexdigits) == 3:
        hexdigits = "".join(c * 2 for c in hexdigits)
    return "#" + hexdigits


def _integer(name: str, raw: bytes, low: int, high: int) -> int:
    value = text(name, raw, 8, required=True)
    # ASCII digits only: "²".isdigit() holds, yet int("²") raises; "١٢٠٠" would be 1200.
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise InvalidParam(name, f"{value!r} is not a whole number from {low} to {high}")
    return int(value)


def _document(raw: bytes) -> str:
    try:
        html = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParam("html", "is not valid UTF-8") from None
    if not html.strip():
        raise InvalidParam("html", "must not be empty")
    if len(raw) > MAX_HTML:
        raise InvalidParam("html", f"is {len(raw)} bytes, at most {MAX_HTML} allowed")
    return html


def _extra(spec: ParamSpec, raw: bytes) -> str:
    if spec.kind == "choice":
        value = text(spec.name, raw, 64, required=True)
        if value not in spec.choices:
            raise InvalidParam(spec.name, f"{value!r} is not one of {', '.join(spec.choices)}")
        return value
    if spec.kind == "image":
        value = text(spec.name, raw, MAX_QUERY_BYTES, required=False)
        if value and not value.startswith(("https://", "http://", "data:image/")):
            raise InvalidParam(spec.name, "must be an http(s):// URL or a data:image/ URL")
        if not value.startswith("data:") and len(value) > MAX_IMAGE_URL:
            raise InvalidParam(spec.name, f"URL longer than {MAX_IMAGE_URL} characters")
        if value.startswith(("https://", "http://")):
            _check_url(spec.name, value)
        return value
    return text(spec.name, raw, MAX_EXTRA, required=False)


def _check_url(name: str, url: str) -> None:
    """A URL whose host and port can be read (two ports, port 99999 or a broken IPv6
    literal make ``urlsplit`` raise) and that has a host at all."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is the check
    except ValueError as exc:
        raise InvalidParam(name, f"is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise InvalidParam(name, "is a URL without a host")


def parse_card(
    pairs: Iterable[tuple[bytes, bytes]],
    templates: Mapping[str, TemplateSpec],
    output: Output = Output(),
) -> tuple[CardParams, Output]:
    """Decoded pairs (``sig`` removed) -> what to draw and what to produce, or InvalidParam.

    ``templates`` says what each available template accepts; ``output`` holds the server's
    defaults for what a render produces (the format comes from the endpoint).
    """
    values: dict[str, bytes] = {}
    for raw_name, value in pairs:
        name = raw_name.decode("utf-8", "replace")
        if name in values:
            raise InvalidParam(name[:40], "given more than once")
        values[name] = value

    template = text("template", values.pop("template", b"default"), 64, required=True)
    if template not in templates:
        choices = ", ".join(sorted(templates))
        raise InvalidParam("template", f"unknown template {template!r}; one of {choices}")
    spec = templates[template]
    own = {p.name: p for p in spec.params}
    for name in values:
        if name not in CORE and name not in OUTPUT and name not in own:
            raise InvalidParam(name[:40], f"unknown parameter for template {template!r}")

    html = _document(values["html"]) if "html" in values else None
    if html is None and "title" not in values:
        raise InvalidParam("title", "is required")
    title = text("title", values.get("title", b""), MAX_TITLE, required=html is None)
    subtitle = text("subtitle", values.get("subtitle", b""), MAX_SUBTITLE, required=False)
    if "accentColor" in values:
        color = text("accentColor", values["accentColor"], 32, required=True)
        accent = normalise_color("accentColor", color)
    else:
        accent = spec.accent_color
    extra = tuple(
        (p.name, _extra(p, values[p.name]) if p.name in values else p.default) for p in spec.params
    )
    version = text("v", values.get("v", b""), 32, required=False)
    if version and not _VERSION.match(version):
        raise InvalidParam("v", "must be 1-32 letters, digits, '.', '_' or '-'")
    card = CardParams(template, title, subtitle, accent, extra, html, version)
    return card, _output(values, output)


def _output(values: dict[str, bytes], output: Output) -> Output:
    changes: dict[str, object] = {}
    if "palette" in values:
        flag = text("palette", values["palette"], 8, required=True).lower()
        if flag not in _BOOLEANS:
            raise InvalidParam("palette", f"{flag!r} is not one of 1, 0, true, false")
        if flag in ("1", "true") and output.format != "png":
            raise InvalidParam("palette", "only applies to PNG")
        changes["palette"] = _BOOLEANS[flag]
    for name in ("width", "height"):
        if name in values:
            changes[name] = _integer(name, values[name], *SIZE_RANGE)
    if "scale" in values:
        changes["scale"] = _integer("scale", values["scale"], min(SCALES), max(SCALES))
    if "quality" in values:
        if output.format == "png":
            raise InvalidParam("quality", "only applies to JPEG and WebP")
        changes["quality"] = _integer("quality", values["quality"], 1, 100)
    result = replace(output, **changes)  # type: ignore[arg-type]
    pixels = result.width * result.height * result.scale**2
    if pixels > MAX_OUTPUT_PIXELS:
        name = "scale" if result.scale > 1 else "width"
        raise InvalidParam(
            name, f"the image would be {pixels:,} pixels, at most {MAX_OUTPUT_PIXELS:,} allowed"
        )
    return result


def json_pairs(body: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """JSON fields (a POST body, a row of `ogproxy render`) as the pairs a query would give.

    Nulls are left out; anything but a string, number or boolean is an InvalidParam, and
    so is a key that is not valid Unicode (values are checked where they are parsed).
    """
    pairs = []
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise InvalidParam(str(name)[:40], "must be a string, number or boolean")
        pairs.append((_json_key(str(name)), value.encode("utf-8", "surrogatepass")))
    return pairs


def _json_key(name: str) -> bytes:
    """A JSON key as a parameter name. JSON can spell a lone surrogate (``"\\ud800"``),
    which UTF-8 cannot encode: a 400 naming the key, escaped."""
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidParam(shown[:40], "is not valid Unicode (a lone surrogate)") from None
