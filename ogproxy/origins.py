"""Which URLs a card may load: the operator's allow-list, and public addresses only.

``OGPROXY_ASSET_ORIGINS`` lists origins as ``scheme://host[:port]`` (matched exactly,
default ports filled in), ``scheme://*.example.com`` (any subdomain of example.com, not
example.com itself) or a preset name such as ``google-fonts``.

A hostname is fetched only if every address it resolves to is public: an allowed name
that resolves (or is re-pointed) to a private, loopback, link-local or metadata address
gets nothing. An operator whose asset host is internal lists its IP-literal origin, e.g.
``http://10.0.0.5:8080``; that is also how tests allow their loopback listener.

A host name is read once, the way the HTTP client reads it (httpx: lower case, IDNA 2008
A-labels, ``。`` as a dot), and that one spelling is matched, resolved and connected to.
The resolver alone would map more (``getaddrinfo`` applies IDNA 2003: full-width digits
become ASCII ones) and the client would then refuse what was checked; a name the client
cannot read, or that is not plain letters, digits, ``-`` and ``_`` once read, is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import ConfigError, InvalidParam

SETTING = "OGPROXY_ASSET_ORIGINS"
PRESETS = {
    # The CSS comes from the first, the font files it points at from the second.
    "google-fonts": ("https://fonts.googleapis.com", "https://fonts.gstatic.com"),
}
DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name as the client sends it: ASCII labels of letters, digits, "-" and "_".
_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
MAX_HOST = 253  # characters of a DNS name

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Origin:
    scheme: str
    # As the client reads it: lower-case ASCII (IDNA A-labels) without a trailing dot, or
    # an IP literal in canonical form (no brackets).
    host: str
    port: int

    @property
    def ip(self) -> Address | None:
        """The host as an address when it is an IP literal."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def netloc(self) -> str:
        """``host[:port]`` as a Host header says it (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS.get(self.scheme) == self.port else f":{self.port}"
        return host + port

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def parse_origin(url: str) -> Origin:
    """The origin of an http(s) URL; ValueError saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as exc:  # a broken IPv6 literal, two ports, port 99999
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    try:
        parsed = httpx.URL(url)  # the client's own reading: what it would connect to
    except httpx.InvalidURL as exc:
        raise ValueError(f"is not a URL the HTTP client accepts ({exc})") from None
    host = _host(parsed.raw_host.decode("ascii"))
    if not host or port == 0:
        raise ValueError("has no host or port")
    if parsed.userinfo:
        raise ValueError("must not carry a user name or password")
    return Origin(parts.scheme, host, port or DEFAULT_PORTS[parts.scheme])


def _host(raw: str) -> str:
    """The one spelling of a host as the client read it: an IP literal in canonical form,
    else a lower-case ASCII DNS name without a trailing dot; ValueError for anything else."""
    host = raw.rstrip(".")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).compressed
    labels = host.split(".")
    if host and (len(host) > MAX_HOST or not all(_LABEL.match(label) for label in labels)):
        raise ValueError(f"has a host name that is not a valid DNS name ({raw[:80]!r})")
    return host


def is_public(address: Address) -> bool:
    """Whether ``address`` is on the public internet (not private, loopback, metadata...)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def _source(origin: Origin, prefix: str) -> str:
    if ":" in origin.host:
        return f"{origin.scheme}:"
    return f"{origin.scheme}://{prefix}{origin.host}:{origin.port}"


class AllowList:
    """The origins the operator allowed; built once, at start-up, from the setting."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.exact: set[Origin] = set()
        self.wildcards: set[Origin] = set()  # host is the suffix after "*."
        for entry in entries:
            for item in PRESETS.get(entry.strip().lower(), (entry.strip(),)):
                self._add(item)

    def _add(self, item: str) -> None:
        wildcard = "://*." in item
        try:
            origin = parse_origin(item.replace("://*.", "://", 1))
            path = urlsplit(item).path
        except ValueError as exc:
            raise ConfigError(f"{SETTING}: {item!r} {exc}") from None
        if path not in ("", "/"):
            raise ConfigError(f"{SETTING}: {item!r} must be an origin, without a path")
        if wildcard and origin.ip is not None:
            raise ConfigError(f"{SETTING}: {item!r}: a wildcard needs a domain name")
        (self.wildcards if wildcard else self.exact).add(origin)

    def __bool__(self) -> bool:
        return bool(self.exact or self.wildcards)

    def sources(self) -> str:
        """The origins as a Content-Security-Policy source list: the same set, or a larger
        one where CSP cannot say it (an IPv6 literal is its scheme). The fetcher still
        decides; this lets a card's page refuse the rest itself, without asking it."""
        sources = {_source(o, "") for o in self.exact} | {_source(o, "*.") for o in self.wildcards}
        return " ".join(sorted(sources))

    def allows(self, origin: Origin) -> bool:
        if origin in self.exact:
            return True
        if origin.ip is not None:
            return False
        return any(
            w.scheme == origin.scheme
            and w.port == origin.port
            and origin.host.endswith("." + w.host)
            for w in self.wildcards
        )

    def check_image(self, name: str, url: str) -> None:
        """Image parameter ``name``'s http(s) URL as the server checks it before fetching
        it: InvalidParam (400) naming ``name`` for a URL the client cannot read or from
        an origin that is not allowed. ``ogproxy sign`` checks with it too."""
        try:
            origin = parse_origin(url)
        except ValueError as exc:
            raise InvalidParam(name, f"{exc}; an http(s):// URL or a data:image/ URL") from None
        if not self.allows(origin):
            raise InvalidParam(name, f"{origin} is not an allowed image origin ({SETTING})")

    def listed_as_ip(self, origin: Origin) -> bool:
        """An IP-literal origin the operator listed: its address is trusted as it is."""
        return origin.ip is not None and origin in self.exact
