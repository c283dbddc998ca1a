"""What most tests need: the test secret, signed URLs, settings, an app on a client, pixels."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from ogproxy import sign_url
from ogproxy.app import app_for
from ogproxy.config import Settings
from ogproxy.rendering import Renderer
from ogproxy.service import Service, load_templates
from ogproxy.templates import TemplateSet

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
    """The built-in templates, loaded (and trial-rendered) once a process for the many apps
    the tests start; None (load them) when the settings add templates or change trust."""
    if settings.templates_dir is not None or settings.trusted_templates != DEFAULT_TRUST:
        return None
    global _BUILT_IN
    if _BUILT_IN is None:
        _BUILT_IN = load_templates(settings)
    return _BUILT_IN


_BUILT_IN: TemplateSet | None = None
DEFAULT_TRUST = Settings.__dataclass_fields__["trusted_templates"].default


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
