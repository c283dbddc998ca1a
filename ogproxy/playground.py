"""A page for people who design cards: pick a template, type, see the card, copy the URL.

On in dev mode; in production only when ``OGPROXY_ADMIN_TOKEN`` is set, and then the
signing endpoint behind it wants that token (``/?token=...`` hands it to the page). The
page itself holds no secret: it asks the server to sign each URL.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .api import Unauthorized, json_body, json_pairs
from .errors import NotFound
from .meta import meta_tags
from .params import parse_card
from .resources import package_dir
from .signing import sign_url

PAGE = (package_dir("static") / "playground.html").read_text(encoding="utf-8")


def _enabled(request: Request) -> bool:
    settings = request.app.state.cards.settings
    return bool(settings.dev or settings.admin_token)


def _authorised(request: Request) -> bool:
    settings = request.app.state.cards.settings
    if settings.admin_token:
        given = request.headers.get("x-admin-token", "")
        return hmac.compare_digest(given.encode(), settings.admin_token.encode())
    return bool(settings.dev)


async def page(request: Request) -> Response:
    if not _enabled(request):
        raise NotFound(detail="playground is off (no --dev, no OGPROXY_ADMIN_TOKEN)")
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})


async def sign(request: Request) -> Response:
    """POST /playground/sign: the signed URL and meta tags for the posted parameters."""
    if not _enabled(request):
        raise NotFound(detail="playground is off")
    if not _authorised(request):
        raise Unauthorized(
            "Missing or invalid admin token (open the playground as /?token=...).",
            detail="playground sign without a valid admin token",
        )
    cards = request.app.state.cards
    body = await json_body(request)
    params = {k: str(v) for k, v in body.items() if v not in (None, "")}
    card, _ = parse_card(json_pairs(params), cards.templates.specs)  # 400 naming a bad field
    base = str(cards.settings.public_url or request.url_for("og_png"))
    url = sign_url(base, cards.secrets[-1], params)
    return JSONResponse(
        {"url": url, "meta": meta_tags(url, alt=card.title)}, headers={"Cache-Control": "no-store"}
    )
