"""What a card's text and size tell its template: language, direction, phrases, shape.

The built-in templates are designed at 1200 x 630; ``Shape`` says how their lengths and
type scale to another size. Chinese has no spaces between words and Chromium breaks its
lines between any two ideographs (its ``word-break: auto-phrase`` knows Japanese only),
so Chinese text gets its phrase boundaries from BudouX, marked with zero-width spaces.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import budoux

DESIGN_WIDTH, DESIGN_HEIGHT = 1200, 630  # the size the built-in templates are drawn at
# Scripts whose lines break at phrases rather than spaces; lang picks how (and, in the
# CJK fonts, which regional glyph forms are used).
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Han, and the CJK punctuation and full-width forms set with it.
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
PHRASE_BREAK = "\u200b"  # zero width space: a line may break here, and nothing shows


def text_lang(*texts: str) -> str:
    """The language a card's text is set in, as far as line breaking cares: ja, ko, zh, en."""
    text = "".join(texts)
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    return "zh" if _HAN.search(text) else "en"


def text_dir(text: str) -> Literal["ltr", "rtl"]:
    """The direction of ``text`` as ``dir="auto"`` finds it: its first strong character."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return "ltr"


@functools.cache
def _chinese_parsers() -> tuple[budoux.Parser, budoux.Parser]:
    return (
        budoux.load_default_simplified_chinese_parser(),
        budoux.load_default_traditional_chinese_parser(),
    )


def phrase_breaks(text: str, lang: str) -> str:
    """Chinese ``text`` with a ``PHRASE_BREAK`` between its phrases; other text as it is.

    A boundary is kept where both of BudouX's Chinese models put one (each alone splits
    words the other keeps: 搭|建, 人|工智|能), next to a Han character or CJK punctuation
    (never inside a Latin word, nor at a space, which breaks already), and not between
    two one-character phrases (一|个: a numeral and its measure word stay together).
    """
    if lang != "zh" or not _HAN.search(text):
        return text
    cuts: set[int] | None = None
    for parser in _chinese_parsers():
        ends = set(_ends(parser.parse(text)))
        cuts = ends if cuts is None else cuts & ends
    assert cuts is not None
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    phrases = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out = [phrases[0]]
    for before, after in itertools.pairwise(phrases):
        if _breakable(before, after):
            out.append(PHRASE_BREAK)
        out.append(after)
    return "".join(out)


def _ends(chunks: list[str]) -> list[int]:
    ends, at = [], 0
    for chunk in chunks:
        at += len(chunk)
        ends.append(at)
    return ends


def _breakable(before: str, after: str) -> bool:
    last, first = before[-1], after[0]
    if last.isspace() or first.isspace():
        return False
    if not (_CJK.match(last) or _CJK.match(first)):
        return False
    return len(before) > 1 or len(after) > 1


@dataclass(frozen=True)
class Shape:
    """How a layout designed at 1200 x 630 scales to a card of another size.

    ``unit`` scales lengths (margins, rules, images): by the card's tighter side, and less
    on a card flatter than the design, whose height is all the title has. ``text`` scales
    secondary text by area. ``title`` is the factor for the title's largest size: by area,
    and more the further the card's shape is from the design's (a square or portrait
    card has room for more lines of larger type, a flat one for longer lines); the fitting
    script still shrinks a long title to its box. A card of the design's shape at another
    size is the design scaled: every factor is the same.
    """

    unit: float
    text: float
    title: float

    @classmethod
    def of(cls, width: int, height: int) -> Shape:
        area = math.sqrt(width * height / (DESIGN_WIDTH * DESIGN_HEIGHT))
        aspect = (height / width) / (DESIGN_HEIGHT / DESIGN_WIDTH)
        unit = min(width / DESIGN_WIDTH, height / DESIGN_HEIGHT) * min(1.0, max(0.5, aspect))
        stretch = max(aspect, 1 / aspect) ** 0.25
        return cls(round(unit, 3), round(area, 3), round(area * stretch, 3))
