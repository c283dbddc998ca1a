"""The built-in templates' design, measured in Chromium's pixels: text that reads on any
accent, right-to-left cards mirrored, every shape filled, Chinese phrases and long words.

Text is measured against the same card with its text hidden (tests/support/glyphs.py).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import pyvips

from ogproxy.config import TEMPLATES_DIR
from ogproxy.params import CardParams, Output
from ogproxy.renderer import Tab
from ogproxy.templates import TemplateSet
from tests.support.glyphs import (
    TEXT,
    boxes,
    capture_with_and_without_text,
    contrast_by_box,
    ink_box,
    text_rows,
)

pytestmark = pytest.mark.anyio
TEMPLATES = ("default", "minimal", "gradient")
THEMED = [("default", "light"), ("default", "dark"), ("minimal", "light"), ("minimal", "dark")]
BUILT_IN = TemplateSet(TEMPLATES_DIR)
# Where the contact sheet of every template at every shape is written.
CONTACT_SHEET = Path(__file__).resolve().parents[1] / "build" / "contact-sheet.png"


async def load(
    tab: Tab, template: str, title: str, subtitle: str = "", *, accent: str | None = None,
    width: int = 1200, height: int = 630, extra: dict[str, str] | None = None,
) -> None:  # fmt: skip
    accent = accent or BUILT_IN.templates[template].accent_color
    params = CardParams(template, title, subtitle, accent, extra=tuple((extra or {}).items()))
    output = Output(width=width, height=height)
    await tab.load(BUILT_IN.render(params, width=width, height=height), output)


# Pale (the three the issue measured at 2.6-2.8:1 on gradient), saturated, a mid grey
# (neither ink is far from it) and dark accents.
ACCENTS = ["#fde68a", "#a7f3d0", "#fbcfe8", "#ff5500", "#22c55e", "#facc15", "#808080", "#1e1b4b"]
READABLE = 4.5  # WCAG AA for text


@pytest.mark.parametrize(("template", "theme"), [*THEMED, ("gradient", "")])
async def test_text_reads_on_any_accent(tab: Tab, template: str, theme: str) -> None:
    """Title, subtitle and byline at 4.5:1 or more against what is drawn under them, tile
    by tile (a gradient changes under the text), on a grid of accents."""
    extra = {"author": "Ann Lee · 4 min read", **({"theme": theme} if theme else {})}
    title = "Readable on any accent: the title, its subtitle and the byline"
    subtitle = (
        "What is under the text counts too: the gradient, its glows, and the corner circle "
        "behind the last words of a long subtitle that runs across the card"
    )
    worst: dict[str, tuple[float, str]] = {}
    for accent in ACCENTS:
        await load(tab, template, title, subtitle, accent=accent, extra=extra)
        captures = await capture_with_and_without_text(tab)
        found = await boxes(tab.page, TEXT)
        assert len(found) == 3
        measured = contrast_by_box(captures, found)
        for name, tiles in zip(("title", "subtitle", "byline"), measured, strict=True):
            assert tiles, (accent, name, "no glyph measured")
            if min(tiles) < worst.get(name, (99.0, ""))[0]:
                worst[name] = (min(tiles), accent)
    assert all(ratio >= READABLE for ratio, _ in worst.values()), worst


AVATAR = "data:image/png;base64," + base64.b64encode(
    pyvips.Image.black(8, 8).new_from_image([255, 0, 255]).cast("uchar").pngsave_buffer()
).decode("ascii")
# Two cards with the same layout (one line of title at the short size, one of subtitle),
# one written left to right, one right to left.
LTR = ("Ship it", "A subtitle", "Ann Lee")
RTL = ("שלום עולם", "כותרת משנה", "אנה לי")


def _mirror_difference(ltr: bytes, rtl: bytes) -> int:
    """Pixels of ``rtl`` that differ from ``ltr`` mirrored by more than anti-aliasing does."""
    a = pyvips.Image.new_from_buffer(ltr, "").extract_band(0, n=3).fliphor()
    b = pyvips.Image.new_from_buffer(rtl, "").extract_band(0, n=3)
    moved = (a.cast("short") - b.cast("short")).abs().bandmean() > 24
    return int(moved.ifthenelse(1, 0).avg() * a.width * a.height)


@pytest.mark.parametrize("template", TEMPLATES)
async def test_right_to_left_cards_are_mirrored(tab: Tab, template: str) -> None:
    """Stripe, rule, gradient, glows, subtitle border, avatar and byline: the card without
    its text is the left-to-right one in a mirror; the title stands on the right."""
    bare, ink = {}, {}
    for direction, (title, subtitle, author) in (("ltr", LTR), ("rtl", RTL)):
        await load(tab, template, title, subtitle, extra={"author": author, "avatar": AVATAR})
        assert await tab.page.evaluate("document.documentElement.dir") == direction
        captures = await capture_with_and_without_text(tab)
        bare[direction] = captures.bare
        (title_box,) = await boxes(tab.page, ".title > span")
        ink[direction] = ink_box(captures, title_box)
    assert _mirror_difference(bare["ltr"], bare["rtl"]) < 100
    left, right = ink["ltr"], ink["rtl"]
    assert left is not None and right is not None
    # The title's first glyph sits at the margin on the start side, in both.
    assert abs(left[0] - (1200 - (right[0] + right[2]))) <= 12, (left, right)


# A right-to-left title over a subtitle and an author written left to right (a Hebrew
# blog, an English name), and the other way round.
MIXED = {"rtl": ("שלום עולם", "A subtitle", "Ann Lee"), "ltr": ("Ship it", "כותרת משנה", "אנה לי")}


@pytest.mark.parametrize("template", TEMPLATES)
async def test_text_of_the_other_direction_starts_on_the_title_side(
    tab: Tab, template: str
) -> None:
    """A subtitle or byline written in the other direction than the title still starts at
    the title's side of the card: where the same block starts on the card written all in
    the title's direction (it was left at the other side, away from its border)."""

    async def starts(title: str, subtitle: str, author: str) -> list[tuple[int, int]]:
        await load(tab, template, title, subtitle, extra={"author": author})
        captures = await capture_with_and_without_text(tab)
        found = await boxes(tab.page, ".subtitle > span, .byline > span")
        edges = []
        for box in found:
            ink = ink_box(captures, box)
            assert ink is not None
            edges.append((ink[0], ink[0] + ink[2]))  # left and right edge of the glyphs
        return edges

    ltr, rtl = await starts(*LTR), await starts(*RTL)
    # On a right-to-left card, Latin text ends at the right edge the Hebrew text has.
    for mixed, alone in zip(await starts(*MIXED["rtl"]), rtl, strict=True):
        assert abs(mixed[1] - alone[1]) <= 12, (template, "rtl", mixed, alone)
    # On a left-to-right card, Hebrew text begins at the left edge the Latin text has.
    for mixed, alone in zip(await starts(*MIXED["ltr"]), ltr, strict=True):
        assert abs(mixed[0] - alone[0]) <= 12, (template, "ltr", mixed, alone)


SHAPES = [(1200, 630), (1200, 600), (1080, 1080), (1000, 1500)]
SHAPE_TITLE = "How we cut our cloud bill by 73% without rewriting a single service"


def _longest_run(rows: list[bool]) -> int:
    longest = run = 0
    for has_text in rows:
        run = 0 if has_text else run + 1
        longest = max(longest, run)
    return longest


async def test_every_shape_is_filled_and_the_contact_sheet(tab: Tab) -> None:
    """Square, portrait, 2:1 and the default: the title's ink covers at least the share of
    the card it covers at 1200 x 630, and no band of the card without text is taller than
    a third of it. Every card (and a right-to-left one) goes on the contact sheet."""
    sheet, report = [], []
    for template in TEMPLATES:
        row, shares = [], {}
        for width, height in SHAPES:
            await load(
                tab, template, SHAPE_TITLE, "Caching, right-sizing and a lot of patience",
                width=width, height=height, extra={"author": "Ann Lee"},
            )  # fmt: skip
            captures = await capture_with_and_without_text(tab)
            (title_box,) = await boxes(tab.page, ".title > span")
            title_ink = ink_box(captures, title_box)
            assert title_ink is not None
            shares[width, height] = title_ink[2] * title_ink[3] / (width * height)
            empty = _longest_run(text_rows(captures)) / height
            report.append((template, width, height, round(shares[width, height], 3), empty))
            row.append(_thumbnail(captures.drawn))
        await load(tab, template, *RTL_SAMPLE[:2], extra={"author": RTL_SAMPLE[2]})
        row.append(_thumbnail(await tab.capture()))
        sheet.append(row)
        assert all(share >= shares[1200, 630] for share in shares.values()), (template, shares)
    _write_sheet(sheet)
    assert all(empty <= 1 / 3 for *_, empty in report), report


RTL_SAMPLE = (
    "كيف خفضنا فاتورة السحابة بنسبة ٧٣٪ دون إعادة كتابة أي خدمة",
    "التخزين المؤقت والصبر",
    "آن لي",
)
THUMB_HEIGHT = 300


def _thumbnail(png: bytes) -> pyvips.Image:
    image = pyvips.Image.new_from_buffer(png, "").extract_band(0, n=3)
    return image.resize(THUMB_HEIGHT / image.height)


def _write_sheet(rows: list[list[pyvips.Image]]) -> None:
    """One row a template: the four shapes, then the right-to-left card."""
    gap, white = 16, [255, 255, 255]
    joined = []
    for row in rows:
        line = row[0]
        for image in row[1:]:
            line = line.join(image, "horizontal", shim=gap, background=white)
        joined.append(line)
    width = max(line.width for line in joined)
    sheet = joined[0].gravity("west", width, joined[0].height, background=white)
    for line in joined[1:]:
        padded = line.gravity("west", width, line.height, background=white)
        sheet = sheet.join(padded, "vertical", shim=gap, background=white)
    CONTACT_SHEET.parent.mkdir(exist_ok=True)
    sheet.pngsave(str(CONTACT_SHEET), palette=True, Q=100)


# The words split across lines when the title is set at 60 px in each width, in one call.
_SPLIT_WORDS = """([words, widths]) => {
  const span = document.querySelector('h1 span'), node = span.firstChild, split = [];
  span.style.fontSize = '60px';
  for (const width of widths) {
    span.style.width = width + 'px';
    for (const word of words) {
      const start = node.data.indexOf(word), tops = new Set();
      for (let i = start; i < start + word.length; i++) {
        const r = document.createRange();
        r.setStart(node, i);
        r.setEnd(node, i + 1);
        tops.add(Math.round(r.getBoundingClientRect().top));
      }
      if (start < 0 || tops.size > 1) split.push([word, width]);
    }
  }
  return split;
}"""


@pytest.mark.parametrize("template", TEMPLATES)
async def test_chinese_titles_break_between_phrases(tab: Tab, template: str) -> None:
    """Chromium breaks Chinese between any two characters (搭建一 / 个); the phrases
    BudouX finds are kept whole at every line length."""
    await load(tab, template, "我们如何在三天内搭建一个自托管的图片服务")
    assert await tab.page.evaluate("document.documentElement.lang") == "zh"
    words = ["搭建", "一个", "自托管", "图片", "服务"]
    widths = list(range(200, 1000, 20))  # every place a line could end
    assert await tab.page.evaluate(_SPLIT_WORDS, [words, widths]) == []


_TITLE_FIT = """() => {
  const box = document.querySelector('.title'), text = box.firstElementChild;
  return [parseFloat(text.style.fontSize), +box.dataset.max,
          text.scrollWidth <= box.clientWidth + 1 && text.offsetHeight <= box.clientHeight + 1];
}"""


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize(
    "title",
    [
        "Donaudampfschifffahrtsgesellschaftskapitänswitwe",
        "Anti\u2011aliasing\u2011and\u2011sub\u2011pixel\u2011positioning\u2011explained",
    ],
    ids=["compound", "non-breaking-hyphens"],
)
async def test_a_long_word_is_broken_before_the_title_gets_small(
    tab: Tab, template: str, title: str
) -> None:
    """A word wider than the card at a readable size is broken inside (it used to shrink
    the whole title to ~40 px on an empty card)."""
    await load(tab, template, title, "A subtitle")
    size, maximum, fits = await tab.page.evaluate(_TITLE_FIT)
    assert fits and size >= 0.6 * maximum, (size, maximum)


_FIT_REPORT = """() => [...document.querySelectorAll('.fit')].map(box => {
  const text = box.firstElementChild, r = box.getBoundingClientRect();
  return text.offsetHeight <= box.clientHeight + 1 && text.scrollWidth <= box.clientWidth + 1
      && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 1 && r.right <= innerWidth + 1
      && !box.classList.contains('clamp');
})"""


@pytest.mark.parametrize("template", TEMPLATES)
async def test_text_fits_unclamped_at_the_extreme_sizes(tab: Tab, template: str) -> None:
    """Margins and type scale with the card: at 200 px a side the text used to overflow
    its box and be clamped (the margins of a 1200 x 630 card left it no room)."""
    title = "How we cut our cloud bill by 73% without rewriting a single service"
    for width, height in [(200, 200), (2400, 200), (200, 2400)]:
        extra = {"author": "Ann Lee"}
        await load(tab, template, title, "A subtitle", width=width, height=height, extra=extra)
        assert all(await tab.page.evaluate(_FIT_REPORT)), (width, height)
