"""The playground: driven in a real headless Chromium once; its rules in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from ogproxy import verify_url
from ogproxy.browser import launch
from tests.support.cards import SECRET, make_settings, running
from tests.support.fake import FakeRenderer
from tests.support.servers import serve

pytestmark = pytest.mark.anyio


@pytest.mark.browser
async def test_type_see_the_card_and_copy_a_signed_url(tmp_path: Path) -> None:
    secret_file = tmp_path / "dev-secret"
    with serve(tmp_path, "--dev", "--dev-secret-file", str(secret_file)) as server:
        async with async_playwright() as pw:
            browser = await launch(pw)
            page = await browser.new_page()
            await page.goto(server.base + "/")
            await page.wait_for_function("document.getElementById('url').value.includes('sig=')")
            await page.fill("#title", "Designed in the playground")
            await page.select_option("#template", "default")
            await page.fill("#author", "Ann Lee")
            await page.wait_for_function(
                "document.getElementById('url').value.includes('Designed%20in%20the%20playground')"
            )
            await page.wait_for_function(
                "(() => { const i = document.getElementById('preview');"
                " return i.complete && i.naturalWidth === 1200 && i.src.includes('Designed'); })()"
            )
            url = await page.input_value("#url")
            meta = await page.input_value("#meta")
            status = await page.text_content("#status")
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
