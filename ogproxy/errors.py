"""Errors that carry their HTTP status and a message that is safe to show the caller."""

from __future__ import annotations

import json


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    """The JSON body of every error answer: ``{"error": ..., "status": ...[, "param": ...]}``."""
    body: dict[str, object] = {"error": message, "status": status}
    if param is not None:
        body["param"] = param
    return json.dumps(body, separators=(",", ":")).encode()


class OgProxyError(Exception):
    """Base of every error ogproxy turns into an HTTP response.

    ``public_message`` is what the client sees; ``detail`` goes to the log only.
    """

    status_code: int = 500
    public_message: str = "Internal error."
    headers: dict[str, str] = {}  # noqa: RUF012 - class-level default, never mutated

    def __init__(self, public_message: str | None = None, *, detail: str | None = None) -> None:
        if public_message is not None:
            self.public_message = public_message
        self.detail = detail or self.public_message
        super().__init__(self.detail)


class BadSignature(OgProxyError):
    # One generic body for a missing and a wrong signature: the reason goes to the log.
    status_code = 403
    public_message = "Invalid or missing signature."

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


class InvalidParam(OgProxyError):
    status_code = 400

    def __init__(self, name: str, problem: str) -> None:
        self.param = name
        super().__init__(f"Invalid parameter '{name}': {problem}")


class Unauthorized(OgProxyError):
    status_code = 401
    public_message = "Missing or invalid API key (x-api-key)."


class BodyTooLarge(OgProxyError):
    status_code = 413
    public_message = "Request body too large."


class QueryTooLong(OgProxyError):
    status_code = 414
    public_message = "Query string too long."


class NotFound(OgProxyError):
    status_code = 404
    public_message = "Not found."


class RenderTimeout(OgProxyError):
    status_code = 504
    public_message = "Rendering took too long."


class InvalidDocument(OgProxyError):
    """The card's HTML could not be rendered as a card (it navigated away, say)."""

    status_code = 422


class OutputTooLarge(OgProxyError):
    """The encoded card is over MAX_OUTPUT_BYTES (a PNG even with a palette): refused, and
    never stored."""

    status_code = 422


class BrowserUnavailable(OgProxyError):
    status_code = 503
    public_message = "Renderer unavailable, try again shortly."
    headers = {"Retry-After": "2"}  # noqa: RUF012


class Overloaded(OgProxyError):
    status_code = 503
    public_message = "Too many renders queued, try again shortly."
    headers = {"Retry-After": "1"}  # noqa: RUF012


class ConfigError(Exception):
    """A setting is missing or wrong; raised at start-up, names the setting."""


class AssetError(OgProxyError):
    """Something a card loads (image, stylesheet, font) could not be used.

    ``param`` names the template parameter when the URL came from one.
    """

    def __init__(
        self, public_message: str, *, param: str | None = None, detail: str | None = None
    ) -> None:
        self.param = param
        super().__init__(public_message, detail=detail)


class AssetRefused(AssetError):
    """Not fetched by policy: the origin is not allowed, or the request is not an asset."""

    status_code = 422


class AssetFailed(AssetError):
    """An allowed asset failed: HTTP error, too big, wrong type, cross-origin redirect."""

    status_code = 502


class AssetTimeout(AssetError):
    status_code = 504
