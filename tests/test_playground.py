"""The playground: driven in a real headless Chromium once; its rules in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from ogproxy import verify_url
from ogproxy.browser import launch
from tests.support.cards import SECRET, make_settings, running
from tests.support.fake import FakeRenderer
from tests.support.servers import serve

pytestmark = pytest.mark.anyio


PRICE = (
    "{{# ogproxy: accentColor=#059669 params=price,badge:new|sale #}}\n"
    "<!doctype html><html><body><h1>{{{{ title }}}}</h1><p>{{{{ price }}}} {text}</p>\n"
    "{{% if badge == 'sale' %}}<b>{{{{ badge }}}}</b>{{% endif %}}</body></html>\n"
)

# What each frame shows of a 1200x630 card: (selector, width / height, largest box or None).
FRAMES = {
    "x": ("#frame-x .crop", 2.0, None),
    "linkedin": ("#frame-linkedin .crop", 1.91, None),
    "facebook": ("#frame-facebook .crop", 1.91, None),
    "slack": ("#frame-slack img", 1200 / 630, (360, 360)),
    "discord": ("#frame-discord img", 1200 / 630, (400, 300)),
    "imessage": ("#frame-imessage img", 1200 / 630, (300, 300)),
}


@pytest.mark.browser
async def test_design_a_card_see_it_on_each_platform_and_see_a_save(tmp_path: Path) -> None:
    """The page in a real Chromium, against `serve --dev` on the fake renderer: the
    template's own parameters as fields, the platform frames, a save shown by itself."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "price.html").write_text(PRICE.format(text="first"))
    secret_file = tmp_path / "dev-secret"
    args = ("--dev", "--dev-secret-file", str(secret_file), "--templates-dir", str(folder))
    with serve(tmp_path, *args, fake=True) as server:
        async with async_playwright() as pw:
            browser = await launch(pw)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(server.base + "/")
            await page.wait_for_function("document.getElementById('url').value.includes('sig=')")
            await page.fill("#title", "Designed in the playground")
            await page.select_option("#template", "default")
            await page.fill("#param-author", "Ann Lee")
            await page.wait_for_function(
                "document.getElementById('url').value.includes('Designed%20in%20the%20playground')"
                " && document.getElementById('url').value.includes('author=Ann')"
            )
            await page.wait_for_function(
                "document.getElementById('preview').dataset.url ==="
                " document.getElementById('url').value"
                " && document.getElementById('status').textContent.includes('×')"
                " && [...document.querySelectorAll('.card-image')].every((i) =>"
                " i.complete && i.naturalWidth === 1200 && i.src.startsWith('blob:'))"
            )
            url = await page.input_value("#url")
            meta = await page.input_value("#meta")
            status = await page.text_content("#status")
            boxes = {}
            for name, (selector, _, _) in FRAMES.items():
                boxes[name] = await page.locator(selector).bounding_box()
            default_fields = await page.eval_on_selector_all(
                "#params input, #params select", "(els) => els.map((e) => e.id)"
            )

            await page.select_option("#template", "price")
            await page.fill("#param-price", "9 EUR")
            await page.select_option("#param-badge", "sale")
            await page.wait_for_function(
                "document.getElementById('url').value.includes('badge=sale')"
            )
            price_fields = await page.eval_on_selector_all(
                "#params input, #params select", "(els) => els.map((e) => e.id)"
            )
            choices = await page.eval_on_selector_all(
                "#param-badge option", "(els) => els.map((e) => e.value)"
            )
            await page.wait_for_function("document.getElementById('preview').dataset.etag")
            before = await page.get_attribute("#preview", "data-etag")

            (folder / "price.html").write_text(PRICE.format(text="second"))  # a save
            await page.wait_for_function(
                f"document.getElementById('preview').dataset.etag !== {before!r}", timeout=5000
            )
            (folder / "price.html").write_text(PRICE.format(text="{{ sku }}"))  # a mistake
            await page.wait_for_selector("#problems:not([hidden])", timeout=5000)
            problems = await page.text_content("#problem-list")

            await page.fill("#title", "")
            await page.wait_for_function("document.getElementById('error').textContent.length > 0")
            error = await page.text_content("#error")
            await page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
            await browser.close()
    params = verify_url(url, secret_file.read_text().strip())
    assert params["title"] == "Designed in the playground" and params["template"] == "default"
    assert params["author"] == "Ann Lee" and params["theme"] == "light"
    assert url.startswith(server.base + "/og.png?")
    assert '<meta property="og:image" content="' in meta and "twitter:image" in meta
    assert status == "1200 × 630"
    assert default_fields == ["param-author", "param-avatar", "param-logo", "param-theme"]
    assert price_fields == ["param-price", "param-badge"] and choices == ["new", "sale"]
    for name, (_, ratio, limit) in FRAMES.items():
        box = boxes[name]
        assert box is not None and box["width"] > 0, name
        assert abs(box["width"] / box["height"] - ratio) < 0.02, (name, box)
        if limit is not None:
            assert box["width"] <= limit[0] + 0.5 and box["height"] <= limit[1] + 0.5, (name, box)
    assert boxes["imessage"] is not None and round(boxes["imessage"]["width"]) == 300
    assert problems is not None and f"{folder / 'price.html'}:2:" in problems
    assert "'sku'" in problems
    assert error is not None and "'title'" in error


async def test_playground_is_off_in_production_unless_a_token_is_set(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "off"), FakeRenderer()) as (_, client):
        assert (await client.get("/")).status_code == 404
        assert (await client.post("/playground/sign", json={"title": "x"})).status_code == 404
    on = make_settings(tmp_path / "on", admin_token="admin-token-0123456789")
    async with running(on, FakeRenderer(), base_url="http://127.0.0.1:8000") as (_, client):
        assert (await client.get("/")).status_code == 200
        denied = await client.post("/playground/sign", json={"title": "x"})
        assert denied.status_code == 401
        ok = await client.post(
            "/playground/sign",
            json={"title": "x"},
            headers={"x-admin-token": "admin-token-0123456789"},
        )
        assert ok.status_code == 200 and verify_url(ok.json()["url"], SECRET)["title"] == "x"


async def test_playground_answers_only_its_own_host_and_signs_for_the_bound_address(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, secrets=(), dev=True, dev_secret_file=tmp_path / "dev-secret", port=8123
    )
    base = "http://127.0.0.1:8123"
    async with running(settings, FakeRenderer(), base_url=base) as (_, client):
        # DNS rebinding: a page on attacker.example whose name now points at 127.0.0.1.
        rebound = await client.post(
            "/playground/sign",
            json={"title": "x", "html": "<h1>owned</h1>"},
            headers={"Host": "attacker.example:80"},
        )
        assert rebound.status_code == 403, rebound.text
        assert "sig=" not in rebound.text
        ok = await client.post(
            "/playground/sign", json={"title": "x"}, headers={"Host": "localhost:8123"}
        )
        assert ok.status_code == 200
        assert ok.json()["url"].startswith(base + "/og.png?")


async def test_the_template_list_in_dev_mode_gives_versions_parameters_and_problems(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "price.html").write_text(
        "{# ogproxy: accentColor=#059669 params=price,photo:image,badge:new|sale #}\n"
        "<p>{{ title }} {{ price }} {{ badge }}</p>\n"
    )
    settings = make_settings(
        tmp_path,
        secrets=(),
        dev=True,
        dev_secret_file=tmp_path / "dev-secret",
        templates_dir=folder,
    )
    async with running(settings, FakeRenderer(), base_url="http://127.0.0.1:8000") as (
        service,
        client,
    ):
        state = await client.get("/playground/templates")
        assert state.status_code == 200 and state.headers["cache-control"] == "no-store"
        body = state.json()
        assert body["problems"] == [] and body["fonts"] == service.design.fonts[:12]
        price = body["templates"]["price"]
        assert price["accentColor"] == "#059669"
        assert price["version"] == service.templates.describe()["price"]["version"]
        assert price["params"] == [
            {"name": "price", "kind": "text"},
            {"name": "photo", "kind": "image"},
            {"name": "badge", "kind": "choice", "choices": ["new", "sale"]},
        ]
        assert {"default", "gradient", "minimal"} <= set(body["templates"])
        rebound = await client.get(
            "/playground/templates", headers={"Host": "attacker.example:8000"}
        )
        assert rebound.status_code == 403 and "price" not in rebound.text

        (folder / "price.html").write_text("{# ogproxy: params=price #}\n<p>{{ sku }}</p>\n")
        started = time.monotonic()
        while not (problems := (await client.get("/playground/templates")).json()["problems"]):
            assert time.monotonic() - started < 1.0, "the broken save was not reported"
            await asyncio.sleep(0.01)
        assert problems == [
            f"{folder / 'price.html'}:2: 'sku' is used but never defined nor declared in params"
        ]
        still = (await client.get("/playground/templates")).json()["templates"]["price"]
        assert still == price  # the last good one is still served


async def test_the_template_list_is_dev_only_and_wants_the_token_when_one_is_set(
    tmp_path: Path,
) -> None:
    token = "admin-token-0123456789"
    production = make_settings(tmp_path / "prod", admin_token=token)
    async with running(production, FakeRenderer(), base_url="http://127.0.0.1:8000") as (_, c):
        answer = await c.get("/playground/templates", headers={"x-admin-token": token})
        assert answer.status_code == 404
    dev = make_settings(
        tmp_path / "dev",
        secrets=(),
        dev=True,
        dev_secret_file=tmp_path / "dev-secret",
        admin_token=token,
    )
    async with running(dev, FakeRenderer(), base_url="http://127.0.0.1:8000") as (_, c):
        assert (await c.get("/playground/templates")).status_code == 401
        answer = await c.get("/playground/templates", headers={"x-admin-token": token})
        assert answer.status_code == 200


async def test_the_pages_poll_is_not_an_access_line_each_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ogproxy.access")
    settings = make_settings(
        tmp_path, secrets=(), dev=True, dev_secret_file=tmp_path / "dev-secret"
    )
    async with running(settings, FakeRenderer(), base_url="http://127.0.0.1:8000") as (_, c):
        for _ in range(3):
            assert (await c.get("/playground/templates")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200
    paths = [
        json.loads(r.getMessage())["path"] for r in caplog.records if r.name == "ogproxy.access"
    ]
    assert paths == ["/healthz"]


async def test_the_page_has_a_frame_for_each_platform(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, secrets=(), dev=True, dev_secret_file=tmp_path / "dev-secret"
    )
    async with running(settings, FakeRenderer(), base_url="http://127.0.0.1:8000") as (_, c):
        page = (await c.get("/")).text
    for platform in ("x", "linkedin", "facebook", "slack", "discord", "imessage"):
        assert f'id="frame-{platform}"' in page
    assert "summary_large_image" in page and "aspect-ratio: 2 / 1" in page
    assert "/playground/templates" in page


def test_dev_mode_with_a_real_secret_does_not_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ogproxy.cli", "serve", "--dev", "--port", "1"],
        env={"OGPROXY_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "--dev" in result.stderr and "OGPROXY_SECRET" in result.stderr
