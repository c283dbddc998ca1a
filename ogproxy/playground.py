"""A page for people who design cards: pick a template, fill in its parameters, see the
card as X, LinkedIn, Facebook, Slack, Discord and iMessage would show it, copy the URL
and the meta tags.

On in dev mode; in production only when ``OGPROXY_ADMIN_TOKEN`` is set, and then the
signing endpoint behind it wants that token (``/?token=...`` hands it to the page). The
page itself holds no secret: it asks the server to sign each URL. In dev mode it also
polls ``/playground/templates`` (the templates' versions, and the problems of the folder
on disk, reload.py) and shows the card again when a saved template changed it.

The signing endpoint answers only requests addressed to this server (the ``Host`` is the
bound address, ``localhost`` on it, or the public URL's host): a web page whose name an
attacker re-points at 127.0.0.1 (DNS rebinding) cannot make a developer's server sign for
it. The URLs it returns are built from the configuration, never from the request.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .api import json_body
from .config import LOOPBACK_HOSTS, Settings
from .errors import NotFound, OgProxyError, Unauthorized
from .meta import meta_tags
from .params import json_pairs, parse_card
from .resources import package_dir
from .signing import sign_url

if TYPE_CHECKING:
    from .cards import Design
    from .reload import Reloader

PAGE = (package_dir("static") / "playground.html").read_text(encoding="utf-8")


class WrongHost(OgProxyError):
    status_code = 403
    public_message = (
        "The playground signs only for requests addressed to this server: open it on the "
        "address it listens on, or set OGPROXY_PUBLIC_URL to the address you use."
    )


def allowed_hosts(settings: Settings) -> set[str]:
    """``Host`` values (lower case, with port) that address this server."""
    hosts = {f"{settings.host}:{settings.port}".lower()}
    if settings.host in LOOPBACK_HOSTS:
        hosts |= {f"{h}:{settings.port}" for h in ("127.0.0.1", "localhost", "[::1]")}
    if settings.public_url:
        public = urlsplit(settings.public_url)
        hosts.add(public.netloc.lower())
    return hosts


class Playground:
    """The page and its endpoints, over the server's settings and its templates now."""

    def __init__(
        self,
        settings: Settings,
        design: Callable[[], Design],
        reloader: Reloader | None = None,
    ) -> None:
        self.settings = settings
        self.design = design  # the templates and fonts served now (a dev reload swaps them)
        self.reloader = reloader
        self.hosts = allowed_hosts(settings)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.dev or self.settings.admin_token)

    def _authorised(self, request: Request) -> bool:
        if self.settings.admin_token:
            given = request.headers.get("x-admin-token", "")
            return hmac.compare_digest(given.encode(), self.settings.admin_token.encode())
        return bool(self.settings.dev)

    async def page(self, request: Request) -> Response:
        if not self.enabled:
            raise NotFound(detail="playground is off (no --dev, no OGPROXY_ADMIN_TOKEN)")
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    def _guard(self, request: Request, what: str) -> None:
        """Only for this server's own address, and with the token when one is set."""
        if not self.enabled:
            raise NotFound(detail=f"playground {what}: the playground is off")
        host = request.headers.get("host", "").lower()
        if host not in self.hosts:
            raise WrongHost(detail=f"playground {what} for Host {host[:100]!r}")
        if not self._authorised(request):
            raise Unauthorized(
                "Missing or invalid admin token (open the playground as /?token=...).",
                detail=f"playground {what} without a valid admin token",
            )

    async def sign(self, request: Request) -> Response:
        """POST /playground/sign: the signed URL and meta tags for the posted parameters."""
        self._guard(request, "sign")
        body = await json_body(request)
        params = {k: str(v) for k, v in body.items() if v not in (None, "")}
        card, _ = parse_card(
            json_pairs(params), self.design().templates.specs
        )  # 400 naming a field
        url = sign_url(self.settings.image_base, self.settings.signing_secrets[-1], params)
        return JSONResponse(
            {"url": url, "meta": meta_tags(url, alt=card.title)},
            headers={"Cache-Control": "no-store"},
        )

    async def templates_now(self, request: Request) -> Response:
        """GET /playground/templates (dev mode): each template's version and parameters,
        the fonts' fingerprint, and what is wrong with the folders on disk while the last
        good set serves."""
        if self.reloader is None:
            raise NotFound(detail="playground templates: only in --dev")
        self._guard(request, "templates")
        request.state.unlogged = True  # the page asks every second: no access line each
        design = self.design()
        return JSONResponse(
            {
                "templates": design.templates.describe(),
                "fonts": design.fonts[:12],
                "problems": self.reloader.problems,
            },
            headers={"Cache-Control": "no-store"},
        )
