"""Formats, sizes, template parameters, inlined images, custom HTML and the POST API."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.assethost import Reply, asset_host
from tests.support.cards import make_settings, png_image, rgb_at, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio


def _red_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


RED_PNG = _red_png()


def image(data: bytes) -> Image.Image:
    return png_image(data)  # Pillow opens JPEG and WebP too


def last_html(renderer: object) -> str:
    """The document the fake renderer was last given: what Chromium would have drawn."""
    assert isinstance(renderer, FakeRenderer)
    return renderer.documents[-1][0].html


@pytest.mark.parametrize(
    ("path", "media", "fmt"),
    [
        ("/og.jpeg", "image/jpeg", "JPEG"),
        ("/og.jpg", "image/jpeg", "JPEG"),
        ("/og.webp", "image/webp", "WEBP"),
        ("/og.png", "image/png", "PNG"),
    ],
)
async def test_formats_by_endpoint(
    client: httpx.AsyncClient, path: str, media: str, fmt: str
) -> None:
    url = signed({"title": "Formats"}, base=f"http://ogproxy.test{path}")
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert image(response.content).format == fmt and image(response.content).size == (1200, 630)
    again = await client.get(url)  # the fast path keeps the media type
    assert again.headers["content-type"] == media and again.headers["x-cache"] == "HIT"


async def test_signature_covers_the_format(client: httpx.AsyncClient) -> None:
    url = signed({"title": "Format is signed"})
    assert (await client.get(url.replace("/og.png", "/og.webp"))).status_code == 403


async def test_width_height_and_retina_scale(client: httpx.AsyncClient) -> None:
    small = await client.get(signed({"title": "Small", "width": "800", "height": "418"}))
    assert image(small.content).size == (800, 418)
    retina = await client.get(signed({"title": "Retina", "scale": "2"}))
    assert image(retina.content).size == (2400, 1260)
    square = await client.get(
        signed({"title": "Square", "width": "1080", "height": "1080", "template": "gradient"})
    )
    assert image(square.content).size == (1080, 1080)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"width": "199"}, "width"),
        ({"width": "2401"}, "width"),
        ({"height": "abc"}, "height"),
        ({"scale": "3"}, "scale"),
        ({"quality": "80"}, "quality"),
        ({"theme": "blue"}, "theme"),
        ({"avatar": "ftp://x/y.png"}, "avatar"),
        ({"avatar": "http://127.0.0.1:80:80/a.png"}, "avatar"),  # two ports: was a 500
        ({"logo": "https://127.0.0.1:99999/a.png"}, "logo"),
        ({"avatar": "http://[::1/a.png"}, "avatar"),  # a broken IPv6 literal
        ({"avatar": "http://x/" + "a" * 2100}, "avatar"),  # the URL bound holds for http too
        ({"avatar": "https://x/" + "a" * 2100}, "avatar"),
        ({"author": "x" * 201}, "author"),
        ({"template": "gradient", "theme": "dark"}, "theme"),
    ],
)
async def test_bad_output_and_template_params_are_400(
    client: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    response = await client.get(signed({"title": "Bad", **params}))
    assert response.status_code == 400 and response.json()["param"] == name


async def test_quality_applies_to_jpeg(client: httpx.AsyncClient) -> None:
    base = "http://ogproxy.test/og.jpeg"
    low = await client.get(signed({"title": "Quality", "quality": "30"}, base=base))
    high = await client.get(signed({"title": "Quality", "quality": "95"}, base=base))
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content)


async def test_author_avatar_and_dark_theme(chromium_client: httpx.AsyncClient) -> None:
    client = chromium_client  # the subject is what is drawn
    light = await client.get(signed({"title": "Themes", "author": "Ann Lee"}))
    dark = await client.get(signed({"title": "Themes", "author": "Ann Lee", "theme": "dark"}))
    assert rgb_at(image(light.content).convert("RGB"), (600, 20))[0] > 200
    assert rgb_at(image(dark.content).convert("RGB"), (600, 20))[0] < 40
    with_avatar = await client.get(
        signed(
            {"title": "Avatar", "author": "Ann Lee", "avatar": f"data:image/png;base64,{RED_PNG}"}
        )
    )
    colours = image(with_avatar.content).convert("RGB").getcolors(1_000_000) or []
    assert sum(n for n, rgb in colours if rgb == (255, 0, 0)) > 1000  # the red avatar is drawn


@pytest.fixture
def image_host() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server with /avatar.png, /page.html and /redirect."""
    with asset_host() as host:
        host.routes["/avatar.png"] = Reply(base64.b64decode(RED_PNG), "image/png")
        host.routes["/page.html"] = Reply(b"<html></html>", "text/html")
        # To another origin: never followed.
        host.routes["/redirect"] = Reply(
            status=302, headers={"Location": "http://localhost:9/avatar.png"}
        )
        yield host.origin, host.hits


async def test_avatar_fetched_only_from_allowed_origins(
    tmp_path: Path, image_host: tuple[str, list[str]]
) -> None:
    origin, hits = image_host
    settings = make_settings(tmp_path, asset_origins=(origin,), asset_failure="fail")
    async with running(settings, FakeRenderer()) as (app, client):
        ok = await client.get(
            signed({"title": "Fetched", "author": "A", "avatar": f"{origin}/avatar.png"})
        )
        assert ok.status_code == 200
        assert f"data:image/png;base64,{RED_PNG}" in last_html(app.renderer)  # inlined
        for url, status, problem in (
            (f"{origin}/page.html", 502, "not an image"),
            (f"{origin}/redirect", 502, "redirects to another origin"),
            ("http://127.0.0.1:9/avatar.png", 400, "not an allowed image origin"),
        ):
            bad = await client.get(signed({"title": "Refused", "avatar": url}))
            assert bad.status_code == status and bad.json()["param"] == "avatar"
            assert problem in bad.json()["error"]
            assert bad.headers["cache-control"] == "no-store"
    assert hits == ["/avatar.png", "/page.html", "/redirect"]  # the redirect was not followed


async def test_custom_html_in_a_signed_url(chromium_client: httpx.AsyncClient) -> None:
    client = chromium_client
    html = "<body style='margin:0;background:#00ff00'><h1 style='font:700 80px Inter'>Custom</h1>"
    response = await client.get(signed({"html": html}))
    assert response.status_code == 200
    assert image(response.content).convert("RGB").getpixel((1100, 600)) == (0, 255, 0)


async def test_user_templates_override_and_add(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "minimal.html").write_text(
        "<body style='margin:0;background:#0000ff'>{{ title }}</body>"
    )
    (folder / "promo.html").write_text(
        "{# ogproxy: accentColor=#ff00ff params=price #}\n"
        "<body style='margin:0;background:{{ accent }}'><b>{{ title }} {{ price }}</b></body>"
    )
    settings = make_settings(tmp_path, templates_dir=folder)
    async with running(settings, FakeRenderer()) as (app, client):
        overridden = await client.get(signed({"title": "Mine", "template": "minimal"}))
        assert overridden.status_code == 200
        assert "<body style='margin:0;background:#0000ff'>Mine</body>" in last_html(app.renderer)
        added = await client.get(signed({"title": "Sale", "template": "promo", "price": "$9"}))
        assert added.status_code == 200
        assert "background:#ff00ff'><b>Sale $9</b>" in last_html(app.renderer)
        builtin = await client.get(signed({"title": "Still here", "template": "gradient"}))
        assert builtin.status_code == 200
        unknown = await client.get(signed({"title": "x", "template": "promo", "author": "A"}))
        assert unknown.status_code == 400 and unknown.json()["param"] == "author"


async def test_a_template_edited_while_serving_changes_nothing_until_a_restart(
    tmp_path: Path,
) -> None:
    """No half state: the design, its version and the cache keys move together, at the
    next start. (Before, new cards used the edited file while /v1/templates and the
    cache keys kept the old version.)"""
    folder = tmp_path / "mine"
    folder.mkdir()
    blue = "<body style='margin:0;background:#0000ff'>{{ title }}</body>"
    (folder / "minimal.html").write_text(blue)
    settings = make_settings(tmp_path, templates_dir=folder)

    async def state(client: httpx.AsyncClient, renderer: object, title: str) -> tuple[str, bool]:
        version = (await client.get("/v1/templates")).json()["templates"]["minimal"]["version"]
        card = await client.get(signed({"title": title, "template": "minimal"}))
        assert card.status_code == 200
        return version, "#0000ff" in last_html(renderer)

    async with running(settings, FakeRenderer()) as (app, client):
        before = await state(client, app.renderer, "Before the edit")
        (folder / "minimal.html").write_text(blue.replace("#0000ff", "#00ff00"))
        # A card not rendered before still has the design of the version shown.
        assert await state(client, app.renderer, "After the edit") == before == (before[0], True)
    async with running(settings, FakeRenderer()) as (app, client):
        version, blue_still = await state(client, app.renderer, "After the restart")
        assert version != before[0] and not blue_still
        assert "#00ff00" in last_html(app.renderer)


API_KEY = "api-key-0123456789"


async def test_post_api_like_a_hosted_og_api(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_keys=(API_KEY,))
    async with running(settings, FakeRenderer()) as (app, client):
        body = {
            "title": "Hosted shape",
            "subtitle": "Only the URL and key change",
            "template": "gradient",
            "accentColor": "#6366f1",
        }
        first = await client.post("/v1/og-image", json=body, headers={"x-api-key": API_KEY})
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert first.headers["x-cache"] == "MISS" and image(first.content).size == (1200, 630)
        second = await client.post("/v1/og-image", json=body, headers={"x-api-key": API_KEY})
        assert second.headers["x-cache"] == "HIT" and second.content == first.content
        # The same card through a signed URL is the same cache entry.
        via_get = await client.get(signed(body))
        assert via_get.headers["x-cache"] == "HIT" and via_get.content == first.content

        html = await client.post(
            "/v1/og-image",
            headers={"x-api-key": API_KEY},
            json={"html": "<body style='margin:0;background:#ff0000'></body>"},
        )
        assert html.status_code == 200
        assert "<body style='margin:0;background:#ff0000'></body>" in last_html(app.renderer)
        jpeg = await client.post(
            "/v1/og-image",
            headers={"x-api-key": API_KEY},
            json={"title": "As JPEG", "format": "jpeg", "width": 600, "height": 315},
        )
        assert jpeg.headers["content-type"] == "image/jpeg" and image(jpeg.content).size == (
            600,
            315,
        )

        for headers, status in (({}, 401), ({"x-api-key": "wrong-key-0123456789"}, 401)):
            denied = await client.post("/v1/og-image", json=body, headers=headers)
            assert denied.status_code == status and denied.headers["cache-control"] == "no-store"
        for payload, name in (
            (b"{not json", "body"),
            (b"[1, 2]", "body"),
            (b'{"title": {"nested": 1}}', "title"),
            (b'{"format": "gif", "title": "x"}', "format"),
            (b'{"format": ["png"], "title": "x"}', "format"),
            (b'{"subtitle": "no title"}', "title"),
        ):
            bad = await client.post(
                "/v1/og-image",
                content=payload,
                headers={"x-api-key": API_KEY, "content-type": "application/json"},
            )
            assert bad.status_code == 400 and bad.json()["param"] == name, payload


async def test_post_api_is_off_without_keys(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/og-image", json={"title": "x"}, headers={"x-api-key": "k"})
    assert response.status_code == 404


def make_block_font(path: Path, flavor: str | None = "woff2") -> None:
    """A WOFF2 font, family "OgTest Blocks", whose "A" is a solid square."""
    from fontTools.fontBuilder import FontBuilder  # type: ignore[import-untyped]
    from fontTools.pens.ttGlyphPen import TTGlyphPen  # type: ignore[import-untyped]

    def square(pen: TTGlyphPen) -> None:
        pen.moveTo((0, 0)), pen.lineTo((0, 1000)), pen.lineTo((1000, 1000)), pen.lineTo((1000, 0))
        pen.closePath()

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "A"])
    builder.setupCharacterMap({ord("A"): "A"})
    glyphs = {}
    for name in (".notdef", "A"):
        pen = TTGlyphPen(None)
        square(pen)
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({".notdef": (1000, 0), "A": (1000, 0)})
    builder.setupHorizontalHeader(ascent=1000, descent=0)
    builder.setupNameTable({"familyName": "OgTest Blocks", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=1000, usWinAscent=1000, usWinDescent=0)
    builder.setupPost()
    builder.font.flavor = flavor
    builder.save(str(path))


@pytest.mark.browser
async def test_fonts_folder_is_used_by_family_name(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    make_block_font(fonts / "blocks.woff2")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "blocks.html").write_text(
        "<body style='margin:0;background:#fff'>"
        "<p style='font:200px \"OgTest Blocks\";color:#000;margin:0'>{{ title }}</p></body>"
    )

    def dark_pixels(data: bytes) -> int:
        colours = image(data).convert("L").getcolors(1_000_000) or []
        return sum(n for n, v in colours if isinstance(v, int) and v < 20)

    url = signed({"title": "AAAA", "template": "blocks"})
    async with running(make_settings(tmp_path / "a", templates_dir=folder)) as (_, client):
        without = await client.get(url)
    async with running(make_settings(tmp_path / "b", templates_dir=folder, fonts_dir=fonts)) as (
        _,
        client,
    ):
        with_fonts = await client.get(url)
    assert with_fonts.headers["etag"] != without.headers["etag"]  # fonts are in the cache key
    assert dark_pixels(with_fonts.content) > 4 * 200 * 190  # four solid 200px squares
    assert dark_pixels(without.content) < dark_pixels(with_fonts.content) / 3
