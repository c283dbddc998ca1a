"""Parse and bound-check the query parameters of a verified request."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from .errors import InvalidParam

MAX_QUERY_BYTES = 4096  # whole raw query; 414 beyond
MAX_TITLE = 200  # characters, after trimming
MAX_SUBTITLE = 300

_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
# Control characters break layout and logs; tabs and newlines too (titles are one paragraph).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

KNOWN = ("title", "subtitle", "template", "accentColor", "palette")
_BOOLEANS = {"1": True, "true": True, "0": False, "false": False}


@dataclass(frozen=True)
class Output:
    """What a render produces; part of the cache key."""

    width: int = 1200
    height: int = 630
    format: str = "png"
    scale: int = 1
    palette: bool = False  # 256-colour PNG instead of lossless


@dataclass(frozen=True)
class CardParams:
    """Normalised parameters of one card: what the template sees and the cache key covers."""

    template: str
    title: str
    subtitle: str
    accent_color: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _text(name: str, raw: bytes, limit: int, *, required: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParam(name, "is not valid UTF-8") from None
    text = unicodedata.normalize("NFC", text).strip()
    if _CONTROL.search(text):
        raise InvalidParam(name, "contains control characters")
    if required and not text:
        raise InvalidParam(name, "must not be empty")
    if len(text) > limit:
        raise InvalidParam(name, f"is {len(text)} characters long, at most {limit} allowed")
    return text


def normalise_color(name: str, raw: str) -> str:
    if not _COLOR.match(raw):
        raise InvalidParam(name, f"{raw[:20]!r} is not a colour like #rgb or #rrggbb")
    hexdigits = raw[1:].lower()
    if len(hexdigits) == 3:
        hexdigits = "".join(c * 2 for c in hexdigits)
    return "#" + hexdigits


def parse_card(
    pairs: Iterable[tuple[bytes, bytes]],
    template_defaults: dict[str, str],
    output_defaults: Output = Output(),
) -> tuple[CardParams, Output]:
    """Decoded query pairs (``sig`` removed) -> what to draw and what to produce.

    Raises InvalidParam (400). ``template_defaults`` maps each available template to its
    default accent colour; ``output_defaults`` holds the server's output settings.
    """
    values: dict[str, bytes] = {}
    for raw_name, value in pairs:
        name = raw_name.decode("utf-8", "replace")
        if name not in KNOWN:
            raise InvalidParam(name[:40], "unknown parameter")
        if name in values:
            raise InvalidParam(name, "given more than once")
        values[name] = value

    if "title" not in values:
        raise InvalidParam("title", "is required")
    title = _text("title", values["title"], MAX_TITLE, required=True)
    subtitle = _text("subtitle", values.get("subtitle", b""), MAX_SUBTITLE, required=False)

    template = _text("template", values.get("template", b"default"), 64, required=True)
    if template not in template_defaults:
        choices = ", ".join(sorted(template_defaults))
        raise InvalidParam("template", f"unknown template {template!r}; one of {choices}")

    if "accentColor" in values:
        color = _text("accentColor", values["accentColor"], 32, required=True)
        accent = normalise_color("accentColor", color)
    else:
        accent = template_defaults[template]
    card = CardParams(template=template, title=title, subtitle=subtitle, accent_color=accent)

    output = output_defaults
    if "palette" in values:
        flag = _text("palette", values["palette"], 8, required=True).lower()
        if flag not in _BOOLEANS:
            raise InvalidParam("palette", f"{flag!r} is not one of 1, 0, true, false")
        output = replace(output, palette=_BOOLEANS[flag])
    return card, output
