"""Dev mode's reloader: a saved template, partial or font is the next request's card.

On the fake renderer, in-process: ``FakeRenderer.documents`` holds the HTML each card was
rendered from, so a test sees exactly which version of a template served a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ogproxy import sign_url
from ogproxy.service import Service
from tests.support.cards import make_settings, running, signed
from tests.support.fake import FakeRenderer
from tests.support.servers import serve

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8000"  # the dev server's own address: the playground answers it
SAVED_WITHIN = 1.0  # seconds from a save to the request that returns its card


def page(text: str) -> str:
    """A template whose document says ``text``, with a parameter and a partial."""
    return (
        "{# ogproxy: accentColor=#059669 params=price #}\n"
        "<!doctype html><html><body><h1>{{ title }}</h1>\n"
        f"<p>{{{{ price }}}}</p><p>{text}</p>\n"
        '{% include "_footer.html" %}</body></html>\n'
    )


def folder_with(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.html").write_text(text)
    return folder


def dev_settings(tmp_path: Path, folder: Path, **overrides: Any) -> Any:
    return make_settings(
        tmp_path / "cache",
        secrets=(),
        dev=True,
        dev_secret_file=tmp_path / "dev-secret",
        templates_dir=folder,
        **overrides,
    )


def card_url(service: Service, **params: str) -> str:
    settings = service.settings
    return signed(params, settings.signing_secrets[-1], settings.image_base)


def last_html(renderer: FakeRenderer) -> str:
    return renderer.documents[-1][0].html


async def until(condition: Callable[[], Awaitable[bool]], within: float = SAVED_WITHIN) -> float:
    """Seconds until ``condition`` holds, asking every 10 ms; fails past ``within``."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within, f"not within {within} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_saved_template_is_what_the_same_url_returns_within_a_second(
    tmp_path: Path,
) -> None:
    folder = folder_with(tmp_path, note=page("first version"), _footer="<footer>f</footer>")
    renderer = FakeRenderer()
    async with running(dev_settings(tmp_path, folder), renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi", price="9 EUR")
        first = await client.get(url)
        again = await client.get(url)  # from the fast path's map from now on
        assert first.status_code == 200 and again.headers["x-cache"] == "HIT"
        assert "first version" in last_html(renderer)
        # The browser asks again each time (the ETag makes an unchanged card a 304).
        assert first.headers["cache-control"] == "no-cache"
        version = (await client.get("/v1/templates")).json()["templates"]["note"]["version"]

        (folder / "note.html").write_text(page("second version"))
        answers: list[httpx.Response] = []

        async def changed() -> bool:
            answers.append(await client.get(url))
            return "second version" in last_html(renderer)

        took = await until(changed)
        latest = answers[-1]
        assert latest.status_code == 200 and latest.headers["x-cache"] == "MISS"
        assert latest.headers["etag"] != first.headers["etag"]  # a new card: a new key
        assert latest.content != first.content
        assert all(a.content in (first.content, latest.content) for a in answers)
        now = (await client.get("/v1/templates")).json()["templates"]["note"]["version"]
        assert now != version
        unchanged = await client.get(url, headers={"If-None-Match": latest.headers["etag"]})
        assert unchanged.status_code == 304
    print(f"saved template served after {took * 1000:.0f} ms")


async def test_a_saved_partial_changes_every_template_that_includes_it(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, note=page("note"), _footer="<footer>old footer</footer>")
    renderer = FakeRenderer()
    async with running(dev_settings(tmp_path, folder), renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi")
        first = await client.get(url)
        assert "old footer" in last_html(renderer)
        (folder / "_footer.html").write_text("<footer>new footer</footer>")

        async def changed() -> bool:
            return (await client.get(url)).headers["etag"] != first.headers["etag"]

        await until(changed)
        assert "new footer" in last_html(renderer)


async def test_a_broken_save_keeps_the_last_good_templates_and_says_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ogproxy")
    folder = folder_with(tmp_path, note=page("good"), _footer="")
    renderer = FakeRenderer()
    async with running(dev_settings(tmp_path, folder), renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi", price="9")
        good = await client.get(url)
        broken = page("good").replace("{{ price }}", "{% if price %}{{ sku }}{% endif %}")
        (folder / "note.html").write_text(broken)

        where = f"{folder / 'note.html'}:3: 'sku' is used but never defined"

        async def reported() -> bool:
            return any(where in r.getMessage() for r in caplog.records)

        await until(reported)
        (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert line.startswith(f"dev reload: {where}") and "last good templates" in line
        still = await client.get(url)
        assert still.status_code == 200 and still.headers["etag"] == good.headers["etag"]
        assert renderer.renders == 1

        (folder / "note.html").write_text(page("fixed"))

        async def fixed() -> bool:
            return (await client.get(url)).headers["etag"] != good.headers["etag"]

        await until(fixed)
        assert "fixed" in last_html(renderer)


async def test_a_deleted_template_is_a_400_naming_the_template_until_it_is_back(
    tmp_path: Path,
) -> None:
    folder = folder_with(tmp_path, note=page("here"), _footer="")
    async with running(dev_settings(tmp_path, folder), FakeRenderer(), BASE) as (service, client):
        url = card_url(service, template="note", title="Hi")
        assert (await client.get(url)).status_code == 200
        (folder / "note.html").unlink()

        async def gone() -> bool:
            return (await client.get(url)).status_code == 400

        await until(gone)
        body = (await client.get(url)).json()
        assert body["param"] == "template" and "note" in body["error"]
        (folder / "note.html").write_text(page("back"))

        async def back() -> bool:
            return (await client.get(url)).status_code == 200

        await until(back)


async def test_a_saved_font_is_a_new_card_rendered_with_the_fonts_reloaded(
    tmp_path: Path,
) -> None:
    folder = folder_with(tmp_path, note=page("fonts"), _footer="")
    fonts = tmp_path / "fonts"
    (fonts / "brand").mkdir(parents=True)
    (fonts / "brand" / "Brand-Regular.ttf").write_bytes(b"one")
    settings = dev_settings(tmp_path, folder, fonts_dir=fonts)
    renderer = FakeRenderer()
    async with running(settings, renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi")
        first = await client.get(url)
        (fonts / "brand" / "Brand-Bold.woff2").write_bytes(b"two")

        async def changed() -> bool:
            return (await client.get(url)).headers["etag"] != first.headers["etag"]

        await until(changed)
        assert renderer.font_reloads == 1 and renderer.renders == 2


async def test_a_request_in_flight_during_a_reload_does_not_pin_the_old_card(
    tmp_path: Path,
) -> None:
    """The request that began before the save keeps its design (its key and its render
    agree), but the fast path must not remember its old key for the URL afterwards."""
    folder = folder_with(tmp_path, note=page("before"), _footer="")
    renderer = FakeRenderer(delay=0.3)
    async with running(dev_settings(tmp_path, folder), renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi")
        in_flight = asyncio.ensure_future(client.get(url))
        await asyncio.sleep(0.05)  # its template is rendered: the fake browser is busy
        design = service.design
        (folder / "note.html").write_text(page("after"))

        async def swapped() -> bool:
            return service.design is not design

        await until(swapped)
        old = await in_flight
        assert old.status_code == 200 and "before" in renderer.documents[0][0].html
        renderer.delay = 0
        new = await client.get(url)
        assert new.headers["x-cache"] == "MISS" and new.headers["etag"] != old.headers["etag"]
        assert "after" in last_html(renderer)


async def test_production_reads_the_templates_once(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, note=page("first"), _footer="")
    settings = make_settings(tmp_path / "cache", templates_dir=folder)
    renderer = FakeRenderer()
    async with running(settings, renderer, BASE) as (service, client):
        url = card_url(service, template="note", title="Hi")
        first = await client.get(url)
        assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
        (folder / "note.html").write_text(page("second"))
        await asyncio.sleep(0.5)  # five times what a dev server takes to serve the save
        again = await client.get(url)
        assert again.headers["etag"] == first.headers["etag"] and renderer.renders == 1
        assert (await client.get("/playground/templates")).status_code == 404


def test_serve_dev_reloads_a_save_and_still_stops_on_ctrl_c_within_a_second(
    tmp_path: Path,
) -> None:
    """The real process (uvicorn, its lifespan, the watch threads) on the fake renderer."""
    folder = folder_with(tmp_path, note=page("first"), _footer="")
    secret_file = tmp_path / "dev-secret"
    args = ("--dev", "--dev-secret-file", str(secret_file), "--templates-dir", str(folder))
    with serve(tmp_path, *args, "--log-format", "text", fake=True) as server:
        url = sign_url(
            server.base + "/og.png",
            secret_file.read_text().strip(),
            {"template": "note", "title": "Hi"},
        )
        first = httpx.get(url, timeout=10)
        assert first.status_code == 200
        (folder / "note.html").write_text(page("second"))
        saved = time.monotonic()
        while (latest := httpx.get(url, timeout=10)).headers["etag"] == first.headers["etag"]:
            assert time.monotonic() - saved < SAVED_WITHIN, server.output()
            time.sleep(0.01)
        assert latest.status_code == 200 and latest.headers["x-cache"] == "MISS"
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGINT)  # what the terminal does
        assert server.proc.wait(timeout=20) == 0
        seconds = time.monotonic() - started
        output = server.output()
    assert "dev reload: serving" in output and "note " in output
    assert "ERROR" not in output and "Traceback" not in output, output
    assert "Finished server process" in output
    # The watch threads stop with the server. test_serve holds a stop to 1 s (with
    # Chromium); this bound leaves room for a loaded machine (0.4-1.2 s seen at load 12).
    assert seconds < 2.0, f"{seconds:.2f} s to stop"
