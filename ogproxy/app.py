"""The HTTP application: signed image URLs in, cached PNG cards out.

The request path, top to bottom: bound the query -> verify the signature -> parse and
check the parameters -> answer a matching If-None-Match -> cache -> render once ->
respond with immutable headers. Nothing is parsed, cached or rendered before the
signature has been verified.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import playground
from .accesslog import AccessLogMiddleware, flush_access_log
from .accesslog import configure as configure_logging
from .api import FORMATS, check_api_key, json_body, json_pairs
from .assets import Assets
from .cachekey import cache_key
from .cards import Cards
from .config import Settings
from .delivery import RawResponse, image_answer
from .encoder import MEDIA_TYPES
from .errors import ConfigError, InvalidParam, OgProxyError, QueryTooLong
from .fonts import fingerprint
from .hits import HitMiddleware
from .limits import LimitsMiddleware
from .meta import meta_tags
from .metrics import Metrics
from .objectstore import ObjectTier
from .params import ENDPOINTS, MAX_QUERY_BYTES, CardParams, Output, parse_card
from .renderer import Renderer
from .signing import sign_url, verify_query
from .store import Store
from .templates import TemplateSet

log = logging.getLogger("ogproxy")


async def og_image(request: Request) -> Response:
    """GET/HEAD /og.png, /og.jpeg, /og.webp: a signed URL."""
    cards: Cards = request.app.state.cards
    path, raw_query = request.scope["path"], request.scope["query_string"]
    if len(raw_query) > MAX_QUERY_BYTES:
        raise QueryTooLong(detail=f"query of {len(raw_query)} bytes")
    pairs = verify_query(path, raw_query, cards.secrets)
    output = cards.output_for(ENDPOINTS[path])
    params, output = parse_card(pairs, cards.templates.specs, output)
    return await _card_response(request, cards, params, output, known=(path, raw_query))


async def api_og_image(request: Request) -> Response:
    """POST /v1/og-image: the hosted-API shape, a JSON body and an ``x-api-key`` header."""
    cards: Cards = request.app.state.cards
    check_api_key(request.headers.get("x-api-key"), cards.settings.api_keys)
    body = await json_body(request)
    fmt = body.pop("format", "png")
    if fmt not in FORMATS:
        raise InvalidParam("format", f"{str(fmt)[:20]!r} is not one of {', '.join(FORMATS)}")
    pairs = json_pairs(body)
    params, output = parse_card(pairs, cards.templates.specs, cards.output_for(fmt))
    return await _card_response(request, cards, params, output)


async def _card_response(
    request: Request,
    cards: Cards,
    params: CardParams,
    output: Output,
    known: tuple[str, bytes] | None = None,
) -> Response:
    template = cards.templates.templates[params.template]
    key = cache_key(template, params, output, cards.fonts)
    media_type = MEDIA_TYPES[output.format]
    if request.headers.get("if-none-match"):  # answered without looking at the image
        status, headers, body = image_answer(request.scope["headers"], "GET", key, b"", b"", b"")
        if status == 304:
            return RawResponse(status, headers, body)

    request.state.key = key[:12]
    result = await cards.get_or_render(key, params, output)
    if known is not None:
        cards.known.remember(*known, key, media_type)
    if result.render_ms is not None:
        request.state.render_ms = result.render_ms
    cache = b"MISS" if result.rendered else b"HIT"
    answer = image_answer(
        request.scope["headers"], request.method, key, media_type.encode(), result.png, cache
    )
    return RawResponse(*answer)


async def templates_index(request: Request) -> Response:
    """GET /v1/templates: each template's version (for `v`), accent and parameters."""
    cards: Cards = request.app.state.cards
    return JSONResponse(
        {"templates": cards.templates.describe()}, headers={"Cache-Control": "no-cache"}
    )


async def healthz(request: Request) -> Response:
    """The process is up."""
    return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    """The browser can render and the caches are usable.

    A cache that is not (memory-only, an object store behind an open breaker) is
    reported as degraded but stays ready: it costs renders, not answers. A browser found
    dead is relaunched in the background: 503 until it is back.
    """
    cards: Cards | None = getattr(request.app.state, "cards", None)
    remote = cards.store.remote if cards else None
    checks: dict[str, object] = {
        "browser": bool(cards and cards.renderer.ready),
        "disk_cache": bool(cards and cards.store.disk is not None),
        "object_store": "off" if remote is None else "open" if remote.breaker.is_open else "ok",
    }
    if cards is not None:
        cards.renderer.revive()  # a dead browser comes back without waiting for traffic
    status = 200 if checks["browser"] else 503
    degraded = not checks["disk_cache"] or checks["object_store"] == "open"
    return JSONResponse(
        {"ready": status == 200, "degraded": degraded, **checks},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    return Response(
        request.app.state.metrics.exposition(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None, param: str | None = None
) -> Response:
    body: dict[str, object] = {"error": message, "status": status}
    if param is not None:
        body["param"] = param
    return JSONResponse(
        body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )


async def _ogproxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OgProxyError)
    level = logging.WARNING if exc.status_code >= 500 else logging.INFO
    log.log(
        level, "%s %s -> %d: %s", request.method, request.scope["path"], exc.status_code, exc.detail
    )
    param = exc.param if isinstance(exc, InvalidParam) else None
    return _error_response(exc.status_code, exc.public_message, exc.headers, param)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.scope["path"])
    return _error_response(500, "Internal error.")


def dev_banner(settings: Settings) -> str:
    """What `serve --dev` prints once ready: a signed example URL and its meta tags."""
    base = f"http://{settings.host}:{settings.port}/og.png"
    params = {
        "title": "Hello from ogproxy 👋",
        "subtitle": "Signed, rendered once, cached",
        "template": "gradient",
    }
    url = sign_url(base, settings.signing_secrets[-1], params)
    return (
        "\nogproxy dev mode: secret kept in "
        f"{settings.dev_secret_file if not settings.secrets else 'OGPROXY_SECRET'}\n"
        f"Example card (open it in a browser):\n  {url}\n"
        f"Meta tags for your page:\n{meta_tags(url)}\n"
        "Sign your own: .venv/bin/ogproxy sign --dev --title 'My post'\n"
        f"Design cards in the playground: http://{settings.host}:{settings.port}/\n"
    )


async def _flush_logs_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        flush_access_log()


def create_app(settings: Settings) -> Starlette:
    """The ASGI app. The cache is opened and the browser launched in its lifespan."""
    try:
        templates = TemplateSet(*settings.template_dirs)
    except (ValueError, jinja2.TemplateError) as exc:
        raise ConfigError(f"templates: {exc}") from exc

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        remote = await ObjectTier.open(settings.store, os.environ) if settings.store else None
        renderer = Renderer(
            pages=settings.pages,
            browsers=settings.browsers,
            chromium=settings.chromium,
            timeout=settings.render_timeout,
            queue=settings.queue,
            fonts_dir=settings.fonts_dir,
        )
        await renderer.start()
        store = Store(
            settings.cache_dir,
            size_limit=settings.cache_size,
            memory_bytes=settings.memory_cache,
            remote=remote,
        )
        if remote is not None:
            remote.start()
        app.state.cards = Cards(
            settings,
            settings.signing_secrets,
            templates,
            store,
            renderer,
            Output(palette=settings.png_palette),
            Assets(settings.asset_origins),
            fonts=fingerprint(settings.fonts_dir),
            on_render=app.state.metrics.render_seconds.observe,
        )
        app.state.metrics.bind(app.state.cards)
        if settings.dev:
            print(dev_banner(settings), flush=True)
        flusher = asyncio.get_running_loop().create_task(_flush_logs_every(1.0))
        try:
            yield
        finally:
            flusher.cancel()
            flush_access_log()
            app.state.metrics.bind(None)
            await renderer.stop()
            await app.state.cards.assets.close()
            if remote is not None:
                await remote.close()  # the queued uploads, within a deadline
            store.close()

    app = Starlette(
        routes=[
            *(
                Route(path, og_image, methods=["GET", "HEAD"], name=path[1:].replace(".", "_"))
                for path in ENDPOINTS
            ),
            Route("/", playground.page, methods=["GET"]),
            Route("/playground/sign", playground.sign, methods=["POST"]),
            Route("/v1/og-image", api_og_image, methods=["POST"]),
            Route("/v1/templates", templates_index, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={
            OgProxyError: _ogproxy_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        # Outermost first: log every request, refuse oversized ones, then answer known hits.
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(LimitsMiddleware),
            Middleware(HitMiddleware),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    return app


def app_from_env() -> Starlette:
    """App factory for worker processes (``ogproxy serve --workers N``): settings from env."""
    configure_logging(
        os.environ.get("OGPROXY_LOG_LEVEL", "info"),
        os.environ.get("OGPROXY_ACCESS_LOG", "1") not in ("0", "false", ""),
    )
    return create_app(Settings.from_env())
