"""What most tests need: the test secret, signed URLs, settings, an app on a client, pixels."""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image

from ogproxy import sign_url
from ogproxy.app import app_for
from ogproxy.config import TEMPLATES_DIR, Settings
from ogproxy.rendering import Renderer
from ogproxy.service import Service
from ogproxy.templates import TemplateSet

if TYPE_CHECKING:
    from ogproxy.renderer import ChromiumRenderer

SECRET = "test-secret-0123456789abcdef"
BASE = "http://ogproxy.test/og.png"
BUCKET = "ogproxy-tests"

Served = tuple[Service, httpx.AsyncClient]
Renders = Callable[[], int]  # cards rendered so far


def signed(
    params: dict[str, Any] | list[tuple[str, Any]], secret: str = SECRET, base: str = BASE
) -> str:
    return sign_url(base, secret, params)


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_at(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The colour of one pixel of an RGB(A) image."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def max_channel(diff: Image.Image) -> int:
    """The largest value in any channel of a (difference) image."""
    extrema = diff.getextrema()
    return max(int(band[1]) for band in extrema if isinstance(band, tuple))


def make_settings(cache_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"secrets": (SECRET,), "cache_dir": cache_dir, "pages": 2}
    values.update(overrides)
    return Settings(**values)


def _built_in(settings: Settings) -> TemplateSet | None:
    """The built-in templates, loaded once a process for the many apps the tests start
    (about 10 ms each, sample renders skipped); None (load them) when the settings add
    templates or change trust."""
    default = Settings.__dataclass_fields__["trusted_templates"].default
    if settings.templates_dir is not None or settings.trusted_templates != default:
        return None
    return _load_built_in(settings.trusted_templates)


@functools.cache
def _load_built_in(trust: bool) -> TemplateSet:
    return TemplateSet(TEMPLATES_DIR, trust=trust)


@asynccontextmanager
async def running(
    settings: Settings, renderer: Renderer | None = None, base_url: str = "http://ogproxy.test"
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    """The app with its lifespan entered, and a client bound to it.

    ``renderer``: real Chromium unless given (the fake: ``tests.support.fake``).
    """
    service = Service.build(settings, renderer, _built_in(settings))
    app = app_for(service)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield service, client


@asynccontextmanager
async def chromium_renderer() -> AsyncIterator[ChromiumRenderer]:
    """A started ChromiumRenderer of one page (Chromium), stopped on exit."""
    from ogproxy.renderer import ChromiumRenderer  # Playwright: not for the fast suite

    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10)
    await renderer.start()
    try:
        yield renderer
    finally:
        await renderer.stop()
