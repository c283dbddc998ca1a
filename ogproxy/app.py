"""The HTTP application: signed image URLs in, cached cards (PNG, JPEG, WebP) out.

The request path, top to bottom:

1. In front of routing (``hits.py``): a path and query whose exact bytes were verified
   and served before, with the image in memory, is answered at once.
2. ``og_image``: bound the query -> verify the signature -> parse and check the
   parameters against the template.
3. ``_card_response``: the content address -> answer a matching If-None-Match (304;
   ``*`` only for a card that is stored) ->
   the image from the cache, or rendered once (``cards.py``) -> respond with immutable
   headers (``delivery.py``) -> remember the query for step 1. A card rendered without
   an asset that failed is answered for a minute and remembered nowhere.

Nothing is parsed, cached or rendered before the signature has been verified.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .accesslog import AccessLogMiddleware, flush_access_log
from .accesslog import configure as configure_logging
from .api import check_api_key, json_body
from .cards import Design
from .config import (
    DEFAULT_DEV_SECRET_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Settings,
    endpoint_url,
)
from .delivery import RawResponse, degraded_answer, image_answer, not_modified, wants_any
from .errors import (
    AssetError,
    BadSignature,
    InvalidParam,
    OgProxyError,
    QueryTooLong,
    error_body,
)
from .formats import ENDPOINTS, FORMATS, Format
from .hits import HitMiddleware
from .limits import LimitsMiddleware
from .logs import Sampler
from .meta import meta_tags
from .params import MAX_QUERY_BYTES, CardParams, Output, json_pairs, parse_card
from .playground import Playground
from .reload import Reloader
from .rendering import Renderer
from .service import Service
from .signing import canonical_spelling, is_canonical, sign_url, verify_query

Endpoint = Callable[[Service, Request], Awaitable[Response]]

log = logging.getLogger("ogproxy")


async def og_image(service: Service, request: Request) -> Response:
    """GET/HEAD /og.png, /og.jpeg, /og.jpg, /og.webp: a signed URL (see the module doc)."""
    path, raw_query = request.scope["path"], request.scope["query_string"]
    if len(raw_query) > MAX_QUERY_BYTES:
        raise QueryTooLong(detail=f"query of {len(raw_query)} bytes")
    pairs = verify_query(path, raw_query, service.settings.signing_secrets)
    defaults = _defaults(service, ENDPOINTS[path])
    design = service.design  # one for the whole request: a dev reload may swap it
    params, output = parse_card(pairs, design.templates.specs, defaults)
    # The fast path remembers the signer's own spelling, one entry a card: respellings of
    # one URL (``+`` for ``%20``, extra ``&``) verify alike, but must not each take memory
    # (hits.py finds them by their canonical spelling).
    spelling = raw_query if is_canonical(raw_query, pairs) else canonical_spelling(raw_query)
    known = (path, spelling) if spelling is not None else None
    return await _card_response(service, request, design, params, output, known=known)


async def api_og_image(service: Service, request: Request) -> Response:
    """POST /v1/og-image: the hosted-API shape, a JSON body and an ``x-api-key`` header."""
    check_api_key(request.headers.get("x-api-key"), service.settings.api_keys)
    body = await json_body(request)
    fmt = body.pop("format", "png")
    if not isinstance(fmt, str) or fmt not in FORMATS:  # a JSON list is not hashable
        raise InvalidParam("format", f"{str(fmt)[:20]!r} is not one of {', '.join(FORMATS)}")
    defaults = _defaults(service, FORMATS[fmt].name)
    design = service.design
    params, output = parse_card(json_pairs(body), design.templates.specs, defaults)
    return await _card_response(service, request, design, params, output)


def _defaults(service: Service, fmt: Format) -> Output:
    """What a request for ``fmt`` produces unless it says otherwise: the server's defaults."""
    return Output(palette=service.settings.png_palette).as_format(fmt)


async def _card_response(
    service: Service,
    request: Request,
    design: Design,
    params: CardParams,
    output: Output,
    known: tuple[str, bytes] | None = None,
) -> Response:
    key = design.key(params, output)
    headers = request.scope["headers"]
    immutable = not service.settings.dev  # under --dev a saved template is a new card
    # Its ETag named: answered without looking at the image. `*`: only if it exists.
    if not_modified(headers, key, stored=False) or (
        wants_any(headers) and await service.store.get(key, output.format) is not None
    ):
        return RawResponse(*image_answer(headers, "GET", key, b"", b"", b"", immutable=immutable))

    request.state.key = key[:12]
    result = await service.cards.get_or_render(key, params, output, design)
    media_type = FORMATS[output.format].media_type
    if result.render_ms is not None:
        request.state.render_ms = result.render_ms
    if result.source == "DEGRADED":
        return RawResponse(*degraded_answer(request.method, media_type.encode(), result.body))
    # Not if the design was swapped meanwhile: the fast path would keep the old card.
    if known is not None and service.design is design:
        service.known.remember(*known, key, media_type)
    answer = image_answer(
        headers,
        request.method,
        key,
        media_type.encode(),
        result.body,
        result.source.encode(),
        stored=False,  # had it existed, `*` was answered above
        immutable=immutable,
    )
    return RawResponse(*answer)


async def templates_index(service: Service, request: Request) -> Response:
    """GET /v1/templates: each template's version (for `v`), accent and parameters."""
    return JSONResponse(
        {"templates": service.templates.describe()}, headers={"Cache-Control": "no-cache"}
    )


async def healthz(request: Request) -> Response:
    """The process is up."""
    return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})


async def readyz(service: Service, request: Request) -> Response:
    """The browser can render and the caches are usable.

    A cache that is not (memory-only, an object store behind an open breaker) is
    reported as degraded but stays ready: it costs renders, not answers. A browser found
    dead is relaunched in the background: 503 until it is back.
    """
    renderer, store = service.renderer, service.store
    remote = store.remote
    checks: dict[str, object] = {
        "browser": renderer.ready,
        "disk_cache": store.disk.usable,
        "object_store": "off" if remote is None else "open" if remote.breaker.is_open else "ok",
        "network_isolation": renderer.network_isolation,
        "browser_sandbox": renderer.browser_sandbox,
    }
    renderer.revive()  # a dead browser comes back without waiting for traffic
    status = 200 if checks["browser"] else 503
    degraded = not checks["disk_cache"] or checks["object_store"] == "open"
    return JSONResponse(
        {"ready": status == 200, "degraded": degraded, **checks},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(service: Service, request: Request) -> Response:
    return Response(
        service.metrics.exposition(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None, param: str | None = None
) -> Response:
    return Response(
        error_body(status, message, param),
        status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type="application/json",
    )


_BAD_SIGNATURES = Sampler(1.0)  # per process; the access log still has every request
_FORBIDDEN = error_body(403, BadSignature.public_message)


def _forbidden(request: Request, exc: BadSignature) -> Response:
    """A 403 as cheap as it can be: one prepared body, a log line a second at most."""
    skipped = _BAD_SIGNATURES.take()
    if skipped is not None:
        more = f" (and {skipped} more since the last such line)" if skipped else ""
        log.info("%s %s -> 403: %s%s", request.method, request.scope["path"], exc.detail, more)
    return Response(
        _FORBIDDEN, 403, headers={"Cache-Control": "no-store"}, media_type="application/json"
    )


async def _ogproxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OgProxyError)
    if isinstance(exc, BadSignature):
        return _forbidden(request, exc)
    level = logging.WARNING if exc.status_code >= 500 else logging.INFO
    log.log(
        level, "%s %s -> %d: %s", request.method, request.scope["path"], exc.status_code, exc.detail
    )
    param = exc.param if isinstance(exc, InvalidParam | AssetError) else None
    return _error_response(exc.status_code, exc.public_message, exc.headers, param)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.scope["path"])
    return _error_response(500, "Internal error.")


def dev_banner(settings: Settings) -> str:
    """What `serve --dev` prints once ready: a signed example URL, its meta tags, and the
    `sign` command that signs for this server (its endpoint, its secret)."""
    base = settings.image_base
    params = {
        "title": "Hello from ogproxy 👋",
        "subtitle": "Signed, rendered once, cached",
        "template": "gradient",
    }
    url = sign_url(base, settings.signing_secrets[-1], params)
    hint = [".venv/bin/ogproxy", "sign"]
    if not settings.secrets:  # else sign reads OGPROXY_SECRET, as this server did
        hint.append("--dev")
        if settings.dev_secret_file != DEFAULT_DEV_SECRET_FILE:
            hint += ["--dev-secret-file", str(settings.dev_secret_file)]
    if base != endpoint_url(None, DEFAULT_HOST, DEFAULT_PORT):
        hint += ["--public-url", base]
    bound = endpoint_url(None, settings.host, settings.port)
    return (
        "\nogproxy dev mode: secret kept in "
        f"{settings.dev_secret_file if not settings.secrets else 'OGPROXY_SECRET'}\n"
        f"Example card (open it in a browser):\n  {url}\n"
        f"Meta tags for your page:\n{meta_tags(url)}\n"
        f"Sign your own: {shlex.join([*hint, '--title', 'My post'])}\n"
        f"Design cards in the playground: {bound.removesuffix('og.png')}\n"
    )


async def _flush_logs_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        flush_access_log()


def create_app(settings: Settings, renderer: Renderer | None = None) -> Starlette:
    """The ASGI app over a new ``Service`` (Chromium unless another ``renderer`` is given).

    The cache tiers and the browser are started in its lifespan.
    """
    return app_for(Service.build(settings, renderer))


def app_for(service: Service) -> Starlette:
    """The ASGI app over ``service``: each route and middleware gets the parts it uses."""
    settings = service.settings
    # Production reads the templates once; --dev follows their folders (reload.py).
    reloader = Reloader(service) if settings.dev else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service.running():
            if reloader is not None:
                await reloader.start()
            if settings.dev:
                print(dev_banner(settings), flush=True)
                if settings.unsafe_dev:
                    log.warning(
                        "--unsafe-dev: the playground signs anything for anyone who reaches "
                        "%s:%d; never run this on a public address",
                        settings.host,
                        settings.port,
                    )
            flusher = asyncio.get_running_loop().create_task(_flush_logs_every(1.0))
            try:
                yield
            finally:
                flusher.cancel()
                if reloader is not None:
                    await reloader.stop()
                flush_access_log()

    def route(path: str, endpoint: Endpoint, methods: list[str]) -> Route:
        return Route(path, partial(endpoint, service), methods=methods)

    playground = Playground(settings, lambda: service.design, reloader)
    return Starlette(
        routes=[
            *(
                Route(
                    path,
                    partial(og_image, service),
                    methods=["GET", "HEAD"],
                    name=path[1:].replace(".", "_"),
                )
                for path in ENDPOINTS
            ),
            Route("/", playground.page, methods=["GET"]),
            Route("/playground/sign", playground.sign, methods=["POST"]),
            Route("/playground/templates", playground.templates_now, methods=["GET"]),
            route("/v1/og-image", api_og_image, ["POST"]),
            route("/v1/templates", templates_index, ["GET"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            route("/readyz", readyz, ["GET", "HEAD"]),
            route("/metrics", metrics, ["GET"]),
        ],
        exception_handlers={
            OgProxyError: _ogproxy_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        # Outermost first: log every request, refuse oversized ones, then answer known hits.
        middleware=[
            Middleware(AccessLogMiddleware, observe=service.metrics.request),
            Middleware(LimitsMiddleware),
            Middleware(
                HitMiddleware,
                known=service.known,
                store=service.store,
                immutable=not settings.dev,
            ),
        ],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """App factory for worker processes (``ogproxy serve --workers N``): settings from env."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.access_log, settings.log_format)
    return create_app(settings)
