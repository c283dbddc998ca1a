"""Measuring text in a card's pixels: the card as drawn against the same card without text.

Text hidden with ``color: transparent`` keeps its layout, so every pixel that differs
between the two captures belongs to a glyph, and the capture without text holds what is
drawn under it (background, gradient, shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips
from PIL import Image
from playwright.async_api import Page

from ogproxy.renderer import Tab

# The text of the built-in templates: title, subtitle, the byline's name.
TEXT = ".fit > span, .byline > span"
# A pixel is a glyph's when it moved this far from the background (sum over channels).
_GLYPH = 24
# Tiles of this size, so that a background that changes across the text (a gradient) is
# measured where each part of the text stands; a tile with fewer glyph pixels is skipped.
TILE = 64
_MIN_GLYPH_PIXELS = 40
# Contrast is taken at this share of a tile's glyph pixels (ordered by contrast): the
# anti-aliased edges of the glyphs are paler, their cores are the ink. Checked against
# colours known from the CSS: default's 22-34 px subtitle (#475569 on #f8fafc, 7.2:1 by
# WCAG) measures 7.2, minimal's (#6b7280 on white, 4.8:1) 4.8.
_INK_PERCENTILE = 0.9

Box = tuple[int, int, int, int]  # left, top, width, height in CSS pixels

_BOXES_JS = """(selector) => [...document.querySelectorAll(selector)].map(e => {
  const r = e.getBoundingClientRect();
  return [r.left, r.top, r.width, r.height].map(Math.round);
})"""


@dataclass(frozen=True)
class Captures:
    """A card as drawn, and without its text (PNG bytes of equal size)."""

    drawn: bytes
    bare: bytes


async def capture_with_and_without_text(tab: Tab, selector: str = TEXT) -> Captures:
    """The loaded card, then the same card with ``selector``'s text hidden; the page is
    left as it was (so the renderer's in-place text updates stay valid)."""
    drawn = await tab.capture()
    hide = f"{selector} {{ color: transparent !important; }}"
    await tab.page.evaluate(
        "(css) => { const s = document.createElement('style'); s.id = '__hide';"
        " s.textContent = css; document.head.append(s); }",
        hide,
    )
    bare = await tab.capture()
    await tab.page.evaluate("document.getElementById('__hide').remove()")
    return Captures(drawn, bare)


async def boxes(page: Page, selector: str) -> list[Box]:
    found: list[list[int]] = await page.evaluate(_BOXES_JS, selector)
    return [(b[0], b[1], b[2], b[3]) for b in found]


def _rgb(png: bytes) -> pyvips.Image:
    image = pyvips.Image.new_from_buffer(png, "")
    return image.extract_band(0, n=3) if image.bands > 3 else image


def _luminance(image: pyvips.Image) -> pyvips.Image:
    linear = image.colourspace("scrgb")
    return linear.recomb([[0.2126, 0.7152, 0.0722]])


def _mask(a: pyvips.Image, b: pyvips.Image) -> pyvips.Image:
    moved = (a.cast("short") - b.cast("short")).abs().bandmean() * 3
    return (moved > _GLYPH).ifthenelse(255, 0).cast("uchar")


def glyph_mask(captures: Captures) -> pyvips.Image:
    """255 where a glyph changed the pixel, else 0."""
    return _mask(_rgb(captures.drawn), _rgb(captures.bare))


def contrast_by_box(captures: Captures, found: list[Box]) -> list[list[float]]:
    """For each box: the contrast ratio of the glyphs' ink against what is under them,
    one figure per tile that holds enough of a glyph (WCAG ratio, 1 to 21)."""
    a, b = _rgb(captures.drawn), _rgb(captures.bare)
    ya, yb = _luminance(a), _luminance(b)
    ratio = ((ya > yb).ifthenelse(ya, yb) + 0.05) / ((ya > yb).ifthenelse(yb, ya) + 0.05)
    # Tenths of a unit of contrast in a byte (21:1 is 210, 1:1 is 10); 0: not a glyph.
    tenths = (_mask(a, b) > 0).ifthenelse((ratio * 10).cast("uchar"), 0).cast("uchar")
    image = Image.frombytes("L", (a.width, a.height), tenths.write_to_memory())
    return [_tiles(image, box) for box in found]


def _tiles(image: Image.Image, box: Box) -> list[float]:
    left, top = max(box[0], 0), max(box[1], 0)
    right, bottom = min(box[0] + box[2], image.width), min(box[1] + box[3], image.height)
    found = []
    for y in range(top, bottom, TILE):
        for x in range(left, right, TILE):
            tile = image.crop((x, y, min(x + TILE, right), min(y + TILE, bottom)))
            counts = tile.histogram()[1:]
            total = sum(counts)
            if total < _MIN_GLYPH_PIXELS:
                continue
            running = 0
            for index, count in enumerate(counts, start=1):
                running += count
                if running >= _INK_PERCENTILE * total:
                    found.append(index / 10)
                    break
    return found


def text_rows(captures: Captures) -> list[bool]:
    """For each row of the card: does any glyph touch it?"""
    mask = glyph_mask(captures)
    profile = mask.project()[1]  # row sums
    return [v > 0 for v in (row[0] for row in profile.tolist())]


def ink_box(captures: Captures, box: Box) -> Box | None:
    """The bounding box of the glyph pixels inside ``box``."""
    mask = glyph_mask(captures)
    left, top = max(box[0], 0), max(box[1], 0)
    width = min(box[0] + box[2], mask.width) - left
    height = min(box[1] + box[3], mask.height) - top
    if width <= 0 or height <= 0:
        return None
    x, y, w, h = mask.crop(left, top, width, height).find_trim(threshold=1, background=[0])
    return None if w == 0 or h == 0 else (left + x, top + y, w, h)
