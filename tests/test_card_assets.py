"""What a card's page loads, through CardRequests, in a real Chromium, from loopback origins."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops
from playwright.async_api import Browser, Page, async_playwright

from ogproxy.browser import launch
from ogproxy.errors import AssetFailed, AssetRefused
from ogproxy.fetcher import CardRequests
from tests.support.assethost import AssetHost, Reply, asset_host, woff2_font
from tests.support.cards import make_settings, png_image, running, signed
from tests.support.pages import fonts_used

pytestmark = [pytest.mark.anyio, pytest.mark.browser]
FAMILY = "Og Test Serif"

# Everything a card waits for before capture: fonts, then every image decoded.
_SETTLED = """async () => {
  await document.fonts.ready;
  await Promise.all([...document.images].map((i) => i.decode().catch(() => null)));
}"""


def png_bytes(color: tuple[int, int, int], size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await launch(pw)
        yield chromium
        await chromium.close()


@pytest.fixture
def cdn() -> Iterator[AssetHost]:
    """A loopback CDN with a PNG, a stylesheet with @font-face and the WOFF2 it names."""
    with asset_host() as host:
        host.routes["/red.png"] = Reply(png_bytes((255, 0, 0)), "image/png")
        host.routes["/font.woff2"] = Reply(woff2_font(FAMILY), "font/woff2")
        host.routes["/brand.css"] = Reply(
            b'@font-face { font-family: "Brand"; src: url(/font.woff2) format("woff2"); }\n'
            b"h1 { font-family: Brand, sans-serif; }\n",
            "text/css",
        )
        yield host


async def open_card(browser: Browser, card: CardRequests, html: str) -> Page:
    """The card's page the way the renderer sets it up: every request to ``card.handle``."""
    context = await browser.new_context(viewport={"width": 1200, "height": 630})
    await context.route("**/*", card.handle)
    page = await context.new_page()
    await page.set_content(html, wait_until="load")
    await page.evaluate(_SETTLED)
    return page


async def pixel(page: Page, x: int, y: int) -> tuple[int, int, int]:
    image = Image.open(io.BytesIO(await page.screenshot())).convert("RGB")
    return image.getpixel((x, y))  # type: ignore[return-value]


async def test_an_image_a_stylesheet_and_its_font_are_loaded(
    browser: Browser, cdn: AssetHost, fetcher: Any
) -> None:
    card = fetcher(cdn.origin).card()
    page = await open_card(
        browser,
        card,
        f'<link rel="stylesheet" href="{cdn.url("/brand.css")}">'
        f'<img src="{cdn.url("/red.png")}" style="position:absolute;left:0;top:0;'
        'width:200px;height:200px"><h1 style="margin-top:300px">Brand font</h1>',
    )
    card.check()
    assert await pixel(page, 100, 100) == (255, 0, 0)
    assert await fonts_used(page, "h1") == {FAMILY}
    assert sorted(cdn.hits) == ["/brand.css", "/font.woff2", "/red.png"]
    await page.context.close()


async def test_a_google_fonts_shaped_pair_of_origins(
    browser: Browser, cdn: AssetHost, fetcher: Any
) -> None:
    with asset_host() as css_host:
        css_host.routes["/css2"] = Reply(
            b'@font-face { font-family: "Inter Test"; font-weight: 800; src: url('
            + cdn.url("/font.woff2").encode()
            + b') format("woff2"); }',
            "text/css; charset=utf-8",
        )
        card = fetcher(css_host.origin, cdn.origin).card()
        page = await open_card(
            browser,
            card,
            f'<link href="{css_host.url("/css2?family=Inter+Test:wght@800")}" rel="stylesheet">'
            "<h1 style=\"font: 800 60px 'Inter Test'\">Hello</h1>",
        )
        card.check()
        assert await fonts_used(page, "h1") == {FAMILY}
        assert "Chrome/" in css_host.headers[0]["user-agent"]
        await page.context.close()


async def test_every_way_a_page_asks_for_an_asset_goes_through_the_fetcher(
    browser: Browser, cdn: AssetHost, fetcher: Any
) -> None:
    for name in ("srcset", "background", "svg", "imported", "picture"):
        cdn.routes[f"/{name}.png"] = Reply(png_bytes((0, 0, 255)), "image/png")
    cdn.routes["/import.css"] = Reply(b"@import url(/brand.css);", "text/css")
    card = fetcher(cdn.origin).card()
    u = cdn.url
    page = await open_card(
        browser,
        card,
        f'<style>@import url("{u("/import.css")}"); '
        f'div {{ width: 50px; height: 50px; background: url("{u("/background.png")}") }}</style>'
        f'<img srcset="{u("/srcset.png")} 1x" width=50 height=50><div></div>'
        f'<svg width=50 height=50><image href="{u("/svg.png")}" width=50 height=50/></svg>'
        f'<picture><source srcset="{u("/picture.png")}"><img width=50 height=50></picture>'
        "<h1>Imported font</h1>",
    )
    card.check()
    assert set(cdn.hits) >= {
        "/import.css",
        "/brand.css",
        "/font.woff2",
        "/background.png",
        "/srcset.png",
        "/svg.png",
        "/picture.png",
    }
    assert await fonts_used(page, "h1") == {FAMILY}
    await page.context.close()


async def test_a_not_allowed_origin_fails_the_card_and_gets_no_connection(
    browser: Browser, cdn: AssetHost, fetcher: Any
) -> None:
    with asset_host() as elsewhere:
        elsewhere.routes["/x.png"] = Reply(png_bytes((0, 255, 0)), "image/png")
        card = fetcher(cdn.origin).card()
        page = await open_card(browser, card, f'<img src="{elsewhere.url("/x.png")}">')
        with pytest.raises(AssetRefused) as refused:
            card.check()
        assert refused.value.status_code == 422
        assert elsewhere.url("/x.png") in refused.value.public_message
        assert "OGPROXY_ASSET_ORIGINS" in refused.value.public_message
        assert elsewhere.connections == 0
        await page.context.close()


@pytest.mark.parametrize(
    ("html", "status", "problem"),
    [
        ('<img src="{cdn}/missing.png">', 502, "answered HTTP 404"),
        ('<link rel=stylesheet href="{cdn}/red.png">', 502, "is image/png, not a stylesheet"),
        ('<script src="{cdn}/app.js"></script>', 422, "(this was a script request)"),
        ("<script>fetch('{cdn}/red.png')</script>", 422, "(this was a fetch request)"),
        ('<iframe src="{cdn}/red.png"></iframe>', 422, "(this was a document request)"),
    ],
)
async def test_what_a_card_cannot_load_fails_it(
    browser: Browser, cdn: AssetHost, fetcher: Any, html: str, status: int, problem: str
) -> None:
    card = fetcher(cdn.origin).card()
    page = await open_card(browser, card, html.format(cdn=cdn.origin))
    with pytest.raises(AssetRefused if status == 422 else AssetFailed) as failed:
        card.check()
    assert failed.value.status_code == status and problem in failed.value.public_message
    assert "/app.js" not in cdn.hits and cdn.hits.count("/red.png") <= 1
    await page.context.close()


async def test_the_card_byte_budget(browser: Browser, cdn: AssetHost, fetcher: Any) -> None:
    cdn.routes["/big.png"] = Reply(png_bytes((0, 255, 0), size=400), "image/png")
    size = len(cdn.routes["/big.png"].body)
    card = fetcher(cdn.origin, card_bytes=size + 10).card()
    page = await open_card(
        browser, card, f'<img src="{cdn.url("/big.png")}"><img src="{cdn.url("/red.png")}">'
    )
    with pytest.raises(AssetFailed, match="the card's assets exceed"):
        card.check()
    await page.context.close()


async def test_a_card_that_is_not_strict_renders_without_it(
    browser: Browser, cdn: AssetHost, fetcher: Any
) -> None:
    card = fetcher(cdn.origin).card(strict=False)
    page = await open_card(browser, card, f'<img src="{cdn.url("/missing.png")}">')
    card.check()  # recorded, counted and logged, but not raised
    assert len(card.failures) == 1 and card.fetcher.counts["failed"] == 1
    await page.context.close()


# --- Through the app: signed URLs in, PNGs (or errors) out --------------------------------

CARD_CSS = b"""@font-face { font-family: "Brand"; src: url(/font.woff2) format("woff2"); }
h1 { font: 96px Brand, serif; margin: 0; position: absolute; left: 40px; top: 300px; }"""


def card_html(origin: str, css_href: str | None = None) -> str:
    """A fragment with a remote image (left 400 px) and a title in the remote font."""
    return (
        f'<link rel="stylesheet" href="{css_href or origin + "/card.css"}">'
        '<div style="width:1200px;height:630px;background:#fff">'
        f'<img src="{origin}/red.png" style="position:absolute;left:0;top:0;width:400px;'
        'height:200px"><h1>Hamburgefonstiv</h1></div>'
    )


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[AssetHost, AssetHost, AssetHost]]:
    """The CDN, a Google-Fonts-shaped CSS origin, and an origin nobody allowed."""
    with asset_host() as cdn, asset_host() as fonts_css, asset_host() as elsewhere:
        cdn.routes["/red.png"] = Reply(png_bytes((255, 0, 0)), "image/png")
        cdn.routes["/logo.png"] = Reply(png_bytes((0, 0, 255)), "image/png")
        cdn.routes["/font.woff2"] = Reply(woff2_font(FAMILY), "font/woff2")
        cdn.routes["/card.css"] = Reply(CARD_CSS, "text/css")
        fonts_css.routes["/css2"] = Reply(
            CARD_CSS.replace(b"url(/font.woff2)", b"url(" + cdn.url("/font.woff2").encode() + b")"),
            "text/css",
        )
        elsewhere.routes["/x.png"] = Reply(png_bytes((0, 255, 0)), "image/png")
        yield cdn, fonts_css, elsewhere


@pytest.fixture(scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, hosts: tuple[AssetHost, AssetHost, AssetHost]
) -> AsyncIterator[tuple[Any, Any]]:
    cdn, fonts_css, _ = hosts
    templates = tmp_path_factory.mktemp("templates")
    (templates / "brand.html").write_text(
        '{% extends "_base.html" %}{% block body %}'
        + card_html(cdn.origin).replace("Hamburgefonstiv", "{{ title }}")
        + "{% endblock %}"
    )
    settings = make_settings(
        tmp_path_factory.mktemp("cache"),
        asset_origins=(cdn.origin, fonts_css.origin),
        templates_dir=templates,
        render_timeout=4.0,  # the card's assets get 3.2 s of it
        asset_failure="fail",  # the errors are the subject; degraded cards: at the end
        api_keys=(API_KEY,),  # a reference card with its font inline is too long for a URL
    )
    async with running(settings) as pair:
        yield pair


API_KEY = "card-assets-test-key-0123456789"


def screenshot(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    return png_image(response.content).convert("RGB")


async def reference(client: Any, origin: str) -> Image.Image:
    """The card with its font as a data: URI, which involves no fetch of the font."""
    font = base64.b64encode(woff2_font(FAMILY)).decode()
    css = CARD_CSS.decode().replace("url(/font.woff2)", f"url(data:font/woff2;base64,{font})")
    html = card_html(origin).replace(
        f'<link rel="stylesheet" href="{origin}/card.css">', f"<style>{css}</style>"
    )
    return screenshot(
        await client.post("/v1/og-image", json={"html": html}, headers={"x-api-key": API_KEY})
    )


async def test_raw_html_shows_the_remote_image_and_font(app: Any, hosts: Any) -> None:
    cdn = hosts[0]
    image = screenshot(await app[1].get(signed({"html": card_html(cdn.origin)})))
    assert image.getpixel((200, 100)) == (255, 0, 0)
    assert image.getpixel((600, 100)) == (255, 255, 255)
    assert ImageChops.difference(image, await reference(app[1], cdn.origin)).getbbox() is None
    # Without the font (same layout, fallback face) the card looks different.
    h1_rule = CARD_CSS.decode().split("\n", 1)[1]
    unfonted = card_html(cdn.origin).replace(
        f'<link rel="stylesheet" href="{cdn.origin}/card.css">', f"<style>{h1_rule}</style>"
    )
    without = screenshot(
        await app[1].post("/v1/og-image", json={"html": unfonted}, headers={"x-api-key": API_KEY})
    )
    assert ImageChops.difference(image, without).getbbox() is not None


async def test_a_custom_template_shows_them_too(app: Any, hosts: Any) -> None:
    cdn = hosts[0]
    image = screenshot(await app[1].get(signed({"template": "brand", "title": "Hamburgefonstiv"})))
    assert image.getpixel((200, 100)) == (255, 0, 0)
    assert ImageChops.difference(image, await reference(app[1], cdn.origin)).getbbox() is None


async def test_a_trusted_custom_template_loads_them_in_the_pool(
    tmp_path: Path, app: Any, hosts: Any
) -> None:
    """OGPROXY_TRUSTED_TEMPLATES puts the template in the shared pool: its assets still
    come through the card's fetcher (before, the pool refused them without a word)."""
    cdn, fonts_css, _ = hosts
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "brand.html").write_text(
        '{% extends "_base.html" %}{% block body %}'
        + card_html(cdn.origin).replace("Hamburgefonstiv", "{{ title }}")
        + "{% endblock %}"
    )
    settings = make_settings(
        tmp_path / "cache",
        asset_origins=(cdn.origin, fonts_css.origin),
        templates_dir=templates,
        trusted_templates=True,
        render_timeout=4.0,
    )
    async with running(settings) as (_, client):
        image = screenshot(await client.get(signed({"template": "brand", "title": "Pooled"})))
    assert image.getpixel((200, 100)) == (255, 0, 0)


async def test_a_google_fonts_shaped_origin_pair(app: Any, hosts: Any) -> None:
    cdn, fonts_css, _ = hosts
    html = card_html(cdn.origin, css_href=fonts_css.url("/css2?family=Brand:wght@400"))
    image = screenshot(await app[1].get(signed({"html": html})))
    assert ImageChops.difference(image, await reference(app[1], cdn.origin)).getbbox() is None
    assert "Chrome/" in fonts_css.headers[-1]["user-agent"]


async def test_a_not_allowed_origin_is_422_and_gets_no_connection(app: Any, hosts: Any) -> None:
    cdn, _, elsewhere = hosts
    html = card_html(cdn.origin).replace(f"{cdn.origin}/red.png", elsewhere.url("/x.png"))
    response = await app[1].get(signed({"html": html}))
    assert response.status_code == 422, response.text
    assert elsewhere.url("/x.png") in response.json()["error"]
    assert f"add {elsewhere.origin} to OGPROXY_ASSET_ORIGINS" in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"
    assert elsewhere.connections == 0
    metrics = (await app[1].get("/metrics")).text
    assert 'ogproxy_assets_total{outcome="refused"}' in metrics


@pytest.mark.parametrize(
    ("broken", "status", "problem"),
    [
        (Reply(b"no", "text/plain", 404), 502, "answered HTTP 404"),
        (Reply(png_bytes((0, 0, 0)), "image/png", delay=5), 504, "did not arrive within"),
        (Reply(bytes(6 * 2**20), "image/png"), 502, "is larger than 5 MiB"),
        (Reply(status=302, headers={"Location": "http://127.0.0.1:9/x.png"}), 502, "redirects"),
        (Reply(b"<html></html>", "text/html"), 502, "is text/html, not an image"),
        # Same origin to the check, no URL to httpx: the route handler settles it at once.
        (Reply(status=302, headers={"Location": "http:%2F%2Fx"}), 502, "a URL the client cannot"),
    ],
    ids=["404", "slow", "oversized", "redirecting", "wrong-type", "unfollowable"],
)
async def test_a_broken_asset_fails_the_card_until_it_is_fixed(
    app: Any, hosts: Any, broken: Reply, status: int, problem: str
) -> None:
    cdn = hosts[0]
    path = f"/broken-{status}-{problem[:6].replace(' ', '')}.png"
    cdn.routes[path] = broken
    html = card_html(cdn.origin).replace("/red.png", path)
    response = await app[1].get(signed({"html": html}))
    assert response.status_code == status, response.text
    assert cdn.url(path) in response.json()["error"] and problem in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"
    cdn.routes[path] = Reply(png_bytes((255, 0, 0)), "image/png")
    if broken.delay:  # the fetch the card gave up on runs to its own 5 s deadline; new
        await asyncio.sleep(2.5)  # requests for the URL share it until then
    fixed = screenshot(await app[1].get(signed({"html": html})))
    assert fixed.getpixel((200, 100)) == (255, 0, 0)


async def test_fifty_cards_sharing_a_logo_fetch_it_once(app: Any, hosts: Any) -> None:
    cdn = hosts[0]
    before = cdn.hits.count("/logo.png")
    # Eight at a time: all fifty at once would wait past this app's short render timeout.
    eight = asyncio.Semaphore(8)

    async def card(i: int) -> Any:
        html = f'<img src="{cdn.url("/logo.png")}" width=100><h1>Card {i}</h1>'
        async with eight:
            return await app[1].get(signed({"html": html}))

    responses = await asyncio.gather(*(card(i) for i in range(50)))
    assert all(r.status_code == 200 for r in responses)
    assert all(screenshot(r).getpixel((50, 50)) == (0, 0, 255) for r in responses)
    assert before == 0 and cdn.hits.count("/logo.png") == 1


async def test_a_card_whose_image_fails_is_served_without_it_until_it_loads(
    tmp_path: Path, hosts: Any
) -> None:
    """The default (degrade) end to end in Chromium: the card without its image, for a
    minute, while the origin fails; the real card, cached, once it recovers."""
    cdn, fonts_css, _ = hosts
    cdn.routes["/flaky.png"] = Reply(b"down", "text/plain", 503)
    url = signed({"html": card_html(cdn.origin).replace("/red.png", "/flaky.png")})
    settings = make_settings(tmp_path / "cache", asset_origins=(cdn.origin, fonts_css.origin))
    async with running(settings) as (_, client):
        degraded = await client.get(url)
        assert degraded.headers["x-cache"] == "DEGRADED", degraded.text
        assert degraded.headers["cache-control"] == "public, max-age=60"
        assert screenshot(degraded).getpixel((200, 100)) == (255, 255, 255)  # no image
        cdn.routes["/flaky.png"] = Reply(png_bytes((255, 0, 0)), "image/png")
        real = await client.get(url)
        assert real.headers["x-cache"] == "MISS" and "immutable" in real.headers["cache-control"]
        assert screenshot(real).getpixel((200, 100)) == (255, 0, 0)
        assert (await client.get(url)).headers["x-cache"] == "HIT"
