"""The built-in templates: real renders in Chromium, checked by pixels and by the DOM."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips
from PIL import ImageChops
from playwright.async_api import Page

from ogproxy.cachekey import cache_key
from ogproxy.config import TEMPLATES_DIR
from ogproxy.params import CardParams, Output
from ogproxy.renderer import Tab
from ogproxy.templates import Document, TemplateSet, raw_document
from tests.support.cards import max_channel, png_image, rgb_at, signed
from tests.support.pages import fonts_used

pytestmark = pytest.mark.anyio
TEMPLATES = ("default", "minimal", "gradient")


@pytest.fixture
def page(tab: Tab) -> Page:
    TAB[tab.page] = tab
    return tab.page


TAB: dict[Page, Tab] = {}


def document(template: str, title: str, subtitle: str = "", accent: str = "#2563eb") -> Document:
    params = CardParams(template, title, subtitle, accent)
    return TemplateSet(TEMPLATES_DIR).render(params, width=1200, height=630)


async def load(
    page: Page, template: str, title: str, subtitle: str = "", accent: str = "#2563eb"
) -> None:
    """Load a card the way the renderer does: text changed in place when the shell matches."""
    await TAB[page].load(document(template, title, subtitle, accent), Output())


def near(pixel: object, rgb: tuple[int, int, int], tolerance: int = 12) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], rgb, strict=True))


@pytest.mark.parametrize("template", TEMPLATES)
async def test_template_renders_a_card_with_its_accent(
    chromium_client: httpx.AsyncClient, template: str
) -> None:
    accent = (0xFF, 0x55, 0x00)
    response = await chromium_client.get(
        signed(
            {
                "title": "Pixels prove it",
                "subtitle": "A subtitle",
                "template": template,
                "accentColor": "#ff5500",
            }
        )
    )
    assert response.status_code == 200
    image = png_image(response.content).convert("RGB")
    assert image.size == (1200, 630)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 100, "blank or flat image"
    accent_pixels = sum(n for n, rgb in colours if near(rgb, accent))
    assert accent_pixels > 400, f"accent colour barely present ({accent_pixels} px)"

    other = await chromium_client.get(
        signed(
            {
                "title": "Pixels prove it",
                "subtitle": "A subtitle",
                "template": template,
                "accentColor": "#0a7",
            }
        )
    )
    other_image = png_image(other.content).convert("RGB")
    other_colours = other_image.getcolors(maxcolors=1_000_000) or []
    assert sum(n for n, rgb in other_colours if near(rgb, accent)) < accent_pixels / 10


@pytest.mark.parametrize("template", TEMPLATES)
async def test_html_in_the_title_is_shown_as_text(page: Page, template: str) -> None:
    title = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & <b>bold</b>'
    await load(page, template, title, subtitle="<i>sub</i>")
    assert await page.evaluate("window.__pwned") is None
    assert await page.text_content("h1 span") == title
    assert await page.text_content("p.subtitle span") == "<i>sub</i>"
    assert await page.evaluate("document.querySelectorAll('script').length") == 1
    assert await page.evaluate("document.querySelectorAll('h1 *, p *').length") == 2  # the spans


_FIT_REPORT = """() => [...document.querySelectorAll('.fit')].map(box => {
        const text = box.firstElementChild, r = box.getBoundingClientRect();
        return {fits: text.offsetHeight <= box.clientHeight + 1
                      && text.scrollWidth <= box.clientWidth + 1,
                inside: r.left >= 0 && r.top >= 0 && r.right <= 1200 && r.bottom <= 630,
                size: parseFloat(text.style.fontSize), max: +box.dataset.max,
                maxShort: +(box.dataset.maxShort || 0),
                clamped: box.classList.contains('clamp')};
    })"""


async def fit_report(page: Page) -> list[dict[str, Any]]:
    report: list[dict[str, Any]] = await page.evaluate(_FIT_REPORT)
    return report


LONG_TITLE = (
    "How we cut our cloud bill by 73% without rewriting a single service: "
    "caching, right-sizing, spot instances and a lot of patience "
) * 2
LONG_TITLE = LONG_TITLE[:200]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize(
    ("title", "subtitle"),
    [
        ("Short", ""),
        (LONG_TITLE, "S" * 10 + " words " * 42),
        ("Pneumonoultramicroscopicsilicovolcanoconiosis" * 4, ""),
        ("東京で会いましょう。" * 20, "مرحبا بالعالم " * 21),
    ],
)
async def test_text_always_fits(page: Page, template: str, title: str, subtitle: str) -> None:
    await load(page, template, title[:200], subtitle[:300])
    report = await fit_report(page)
    assert report and all(box["fits"] and box["inside"] for box in report), report
    assert not report[0]["clamped"], "a 200-character title must fit without clamping"
    if title == "Short":  # one word grows past the usual maximum, to fill the card
        assert report[0]["size"] == report[0]["maxShort"] > report[0]["max"]
    else:
        assert report[0]["size"] < report[0]["max"]


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("Ünïcödé àccents", "Inter"),
        ("Launch day 🚀🎉", "Noto Color Emoji"),
        ("東京で会いましょう", "Noto Sans CJK"),
        ("مرحبا بالعالم", "Noto Sans Arabic"),
        ("שלום עולם", "Noto Sans Hebrew"),
    ],
)
async def test_scripts_and_emoji_use_real_fonts(page: Page, text: str, family: str) -> None:
    await load(page, "default", text)
    families = await fonts_used(page, "h1 span")
    assert any(f.startswith(family) for f in families), families


async def test_rtl_title_is_right_aligned(page: Page) -> None:
    await load(page, "default", "مرحبا بالعالم")
    direction = await page.evaluate("getComputedStyle(document.querySelector('h1 span')).direction")
    assert direction == "rtl"


def test_editing_a_template_changes_the_cache_key(tmp_path: Path) -> None:
    for path in TEMPLATES_DIR.glob("*.html"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    params = CardParams("minimal", "Title", "", "#e11d48")
    before = cache_key(TemplateSet(tmp_path).templates["minimal"], params, Output())
    assert before == cache_key(TemplateSet(TEMPLATES_DIR).templates["minimal"], params, Output())
    with (tmp_path / "_base.html").open("a") as f:
        f.write("<!-- edited -->\n")
    after = cache_key(TemplateSet(tmp_path).templates["minimal"], params, Output())
    assert after != before
    other_output = cache_key(TemplateSet(tmp_path).templates["minimal"], params, Output(width=800))
    assert other_output != after


@pytest.mark.parametrize("template", TEMPLATES)
async def test_text_changed_in_place_looks_like_a_fresh_page(tab: Tab, template: str) -> None:
    cards = [
        ("Short one", ""),
        (LONG_TITLE, "With a subtitle"),
        ("東京で会いましょう 🚀", "مرحبا"),
        ("Pneumonoultramicroscopicsilicovolcanoconiosis" * 4, "x"),
    ]
    for title, subtitle in cards:
        doc = document(template, title, subtitle)
        assert doc.shell is not None, "built-in templates must support in-place updates"
        await tab.load(doc, Output())
        updated = await tab.capture()
        assert tab.shell is not None
        await tab.page.set_content(doc.html)
        await tab.page.evaluate("window.__ogReady")
        fresh = await tab.capture()
        tab.shell = None
        a, b = png_image(updated).convert("RGB"), png_image(fresh).convert("RGB")
        diff = ImageChops.difference(a, b)
        # Re-rastering only the changed box can shift anti-aliasing on an edge it crosses
        # by a few levels; anything more (stale text, layout) is a real difference.
        changed = sum(diff.convert("L").point(lambda v: 255 if v else 0).histogram()[255:])
        worst = max_channel(diff)
        assert worst <= 4 and changed <= 50, (template, title[:20], diff.getbbox(), worst, changed)


def test_template_using_text_elsewhere_falls_back_to_a_full_load(tmp_path: Path) -> None:
    (tmp_path / "default.html").write_text(
        "<title>{{ title }}</title><h1>{{ title }}</h1>"
        "{{ subtitle }}{{ accent }}{{ width }}{{ height }}"
    )
    (tmp_path / "upper.html").write_text("<h1>{{ title | upper }}</h1>{{ subtitle }}")
    templates = TemplateSet(tmp_path)
    for name in ("default", "upper"):
        doc = templates.render(CardParams(name, "Title", "", "#000000"), width=10, height=10)
        assert doc.shell is None
        assert "Title" in doc.html or "TITLE" in doc.html


@pytest.mark.parametrize(("width", "height"), [(1200, 630), (600, 1200), (500, 500)])
def test_pre_rendered_gradient_runs_corner_to_corner_in_whole_pixel_steps(
    width: int, height: int
) -> None:
    import io

    from PIL import Image

    from ogproxy.encoder import linear_gradient

    uri = str(linear_gradient(width, height, "#6366f1", "#101010"))
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    assert image.size == (width, height)
    assert image.getpixel((0, 0)) == (0x63, 0x66, 0xF1)
    assert image.getpixel((width - 1, height - 1)) == (0x10, 0x10, 0x10)
    # The other two corners sit half-way, as in CSS `to bottom right` (within the
    # whole-pixel slope: 48.8% and 51.2% on a 1200x630 card).
    for corner in [(width - 1, 0), (0, height - 1)]:
        assert all(
            abs(c - (a + b) / 2) <= 4
            for c, a, b in zip(rgb_at(image, corner), (99, 102, 241), (16, 16, 16), strict=True)
        )
    # Rows (or columns, when tall) are whole-pixel shifts of their neighbours: the
    # repetition deflate turns into long matches.
    wide = width >= height
    shift = round(width / height) if wide else round(height / width)
    if not wide:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    rows = [image.crop((0, y, image.width, y + 1)).tobytes() for y in range(image.height)]
    assert all(rows[y + 1][: -3 * shift] == rows[y][3 * shift :] for y in range(len(rows) - 1))


# Where each character of a word sits, one top per line it is on.
_LINES_OF = """([word, width]) => {
  const span = document.querySelector('h1 span');
  span.style.width = width + 'px';
  span.style.fontSize = '60px';
  const node = span.firstChild, start = node.data.indexOf(word), tops = new Set();
  for (let i = start; i < start + word.length; i++) {
    const r = document.createRange();
    r.setStart(node, i);
    r.setEnd(node, i + 1);
    tops.add(Math.round(r.getBoundingClientRect().top));
  }
  return tops.size;
}"""


@pytest.mark.parametrize("template", TEMPLATES)
async def test_japanese_titles_break_between_phrases(page: Page, template: str) -> None:
    title = "東京で一番おいしいラーメン屋さんを探して歩いた三日間の記録"
    await load(page, template, title)
    assert await page.evaluate("document.documentElement.lang") == "ja"
    for width in range(240, 1000, 20):  # every place the line could end
        assert await page.evaluate(_LINES_OF, ["ラーメン", width]) == 1, width


@pytest.mark.parametrize("template", TEMPLATES)
async def test_a_short_title_fills_its_card(page: Page, template: str) -> None:
    for title in ("Ship it", "Launch Week Three"):
        await load(page, template, title, "A subtitle")
        report = await fit_report(page)
        assert report[0]["size"] > 1.4 * report[0]["max"], (title, report[0])
        assert all(box["fits"] and box["inside"] for box in report), report
    await load(page, template, "Six words make a normal title", "A subtitle")
    assert (await fit_report(page))[0]["size"] <= (await fit_report(page))[0]["max"]


def test_the_mirrored_gradient_runs_to_the_bottom_left() -> None:
    from ogproxy.encoder import linear_gradient

    def image(mirrored: bool) -> pyvips.Image:
        uri = str(linear_gradient(300, 200, "#6366f1", "#101010", mirrored))
        return pyvips.Image.new_from_buffer(base64.b64decode(uri.split(",", 1)[1]), "")

    plain, mirrored = image(False), image(True)
    assert mirrored.getpoint(299, 0) == [0x63, 0x66, 0xF1]
    assert mirrored.getpoint(0, 199) == [0x10, 0x10, 0x10]
    assert (plain.fliphor() == mirrored).min() == 255


GUIDE_FRAGMENT = (
    '<div style="display:flex;width:1200px;height:630px;background:#1e3a8a;color:white;'
    'align-items:center;justify-content:center"><h1 style="font-size:72px">Hello</h1></div>'
)


async def test_a_fragment_fills_the_card_edge_to_edge(chromium_client: httpx.AsyncClient) -> None:
    response = await chromium_client.get(signed({"html": GUIDE_FRAGMENT}))
    assert response.status_code == 200
    image = png_image(response.content).convert("RGB")
    for corner in [(0, 0), (1199, 0), (0, 629), (1199, 629)]:
        assert image.getpixel(corner) == (0x1E, 0x3A, 0x8A), corner


async def test_a_fragment_uses_the_built_in_fonts_and_a_document_is_kept(page: Page) -> None:
    await page.set_content(raw_document(GUIDE_FRAGMENT))
    assert any(f.startswith("Inter") for f in await fonts_used(page, "h1"))
    whole = "<!doctype html><html><body style='margin:20px'><h1>As given</h1></body></html>"
    assert raw_document(whole) == whole
    assert raw_document("<BODY><p>x</p>") == "<BODY><p>x</p>"
