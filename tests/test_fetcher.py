"""The fetcher against real loopback origins: allow-list, addresses, limits, cache."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import ipaddress
import logging
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ogproxy import fetcher as fetcher_module
from ogproxy.assetcache import AssetCache
from ogproxy.errors import (
    AssetError,
    AssetFailed,
    AssetRefused,
    AssetTimeout,
    ConfigError,
    InvalidDocument,
    InvalidParam,
)
from ogproxy.fetcher import Fetcher
from ogproxy.origins import AllowList, is_public, parse_origin
from ogproxy.rendering import MAX_PAGE_REQUESTS
from tests.support.assethost import AssetHost, Reply, asset_host
from tests.support.fake import FakeRequest, FakeRoute

pytestmark = pytest.mark.anyio


def png_bytes(color: tuple[int, int, int] = (255, 0, 0), size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def host() -> Iterator[AssetHost]:
    with asset_host() as server:
        yield server


@pytest.fixture
def make(fetcher: Any) -> Any:
    return fetcher


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_an_allowed_image_is_fetched_and_inlined(host: AssetHost, make: Any) -> None:
    png = png_bytes()
    host.routes["/a.png"] = Reply(png, "image/png")
    uri = await make(host.origin).inline("avatar", host.url("/a.png"))
    assert uri == "data:image/png;base64," + base64.b64encode(png).decode()
    assert host.hits == ["/a.png"]


async def test_a_not_allowed_origin_is_refused_without_a_connection(
    host: AssetHost, make: Any
) -> None:
    host.routes["/a.png"] = Reply(png_bytes(), "image/png")
    fetcher = make("http://127.0.0.1:9")
    with pytest.raises(AssetRefused) as refused:
        await fetcher.get(host.url("/a.png"), "image", soon())
    assert refused.value.status_code == 422
    message = refused.value.public_message
    assert (
        host.url("/a.png") in message and f"add {host.origin} to OGPROXY_ASSET_ORIGINS" in message
    )
    with pytest.raises(InvalidParam) as bad:
        await fetcher.inline("logo", host.url("/a.png"))
    assert bad.value.status_code == 400 and bad.value.param == "logo"
    assert host.connections == 0 and fetcher.counts["refused"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:80:80/a.png",  # two ports
        "http://127.0.0.1:99999/a.png",
        "http://[::1/a.png",  # a broken IPv6 literal
        "http://[zz::1]/a.png",
        "http://:80/a.png",
        "ftp://127.0.0.1/a.png",
        "http://user:pw@127.0.0.1/a.png",
    ],
)
async def test_malformed_image_urls_are_400_naming_the_param(make: Any, url: str) -> None:
    with pytest.raises(InvalidParam) as bad:
        await make("http://127.0.0.1").inline("avatar", url)
    assert bad.value.status_code == 400 and bad.value.param == "avatar"


async def test_the_timeout_is_total_not_per_read(host: AssetHost, make: Any) -> None:
    # A byte every 0.1 s never trips a per-read timeout; the whole body would take 6 s.
    host.routes["/slow.png"] = Reply(png_bytes()[:60], "image/png", trickle=0.1)
    fetcher = make(host.origin, asset_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(AssetTimeout) as slow:
        await fetcher.inline("avatar", host.url("/slow.png"))
    assert time.monotonic() - started < 2.5
    assert slow.value.status_code == 504 and slow.value.param == "avatar"
    assert host.url("/slow.png") in slow.value.public_message


async def test_the_card_deadline_bounds_every_asset(host: AssetHost, make: Any) -> None:
    host.routes["/late.png"] = Reply(png_bytes(), "image/png", delay=2.0)
    fetcher = make(host.origin, card_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(AssetTimeout, match=r"within the card.s 0\.5 s"):
        await fetcher.get(host.url("/late.png"), "image", fetcher.card().deadline)
    assert time.monotonic() - started < 1.5


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    return b"".join(packer.compress(zeros) for _ in range(size // 2**20)) + packer.flush()


async def test_a_gzip_bomb_costs_no_more_than_the_cap(host: AssetHost, make: Any) -> None:
    bomb = gzip_bomb(128 * 2**20)  # 128 MiB of zeros in about 125 KB
    host.routes["/bomb.png"] = Reply(bomb, "image/png", headers={"Content-Encoding": "gzip"})
    fetcher = make(host.origin, asset_bytes=2 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(AssetFailed, match="larger than 2 MiB"):
            await fetcher.inline("avatar", host.url("/bomb.png"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB"


async def test_a_gzipped_asset_within_the_cap_is_decoded(host: AssetHost, make: Any) -> None:
    css = b"body { color: red }\n" * 100
    host.routes["/a.css"] = Reply(
        gzip.compress(css), "text/css", headers={"Content-Encoding": "gzip"}
    )
    asset = await make(host.origin).get(host.url("/a.css"), "stylesheet", soon())
    assert asset.body == css


async def test_a_declared_oversized_body_is_not_read(host: AssetHost, make: Any) -> None:
    host.routes["/big.png"] = Reply(png_bytes() + bytes(3 * 2**20), "image/png")
    with pytest.raises(AssetFailed, match="larger than 1 MiB") as big:
        await make(host.origin, asset_bytes=2**20).get(host.url("/big.png"), "image", soon())
    assert big.value.status_code == 502


@pytest.mark.parametrize(
    ("kind", "served", "ok"),
    [
        ("image", "text/html", False),
        ("image", "image/svg+xml", True),
        ("stylesheet", "text/plain", False),
        ("stylesheet", "text/css; charset=utf-8", True),
        ("font", "font/woff2", True),
        ("font", "text/html", False),
        ("image", "application/octet-stream", True),  # PNG bytes: sniffed
        ("font", "application/octet-stream", False),  # PNG bytes are no font
    ],
)
async def test_the_type_must_be_what_the_element_asked_for(
    host: AssetHost, make: Any, kind: str, served: str, ok: bool
) -> None:
    host.routes["/x"] = Reply(png_bytes(), served)
    fetcher = make(host.origin)
    if ok:
        assert (await fetcher.get(host.url("/x"), kind, soon())).body == png_bytes()
    else:
        with pytest.raises(AssetFailed, match=f"is {served}, not a"):
            await fetcher.get(host.url("/x"), kind, soon())


async def test_redirects_stay_within_the_origin(host: AssetHost, make: Any) -> None:
    with asset_host() as other:
        other.routes["/a.png"] = Reply(png_bytes(), "image/png")
        host.routes["/a.png"] = Reply(png_bytes(), "image/png")
        host.routes["/here"] = Reply(status=302, headers={"Location": "/a.png"})
        host.routes["/away"] = Reply(status=302, headers={"Location": other.url("/a.png")})
        host.routes["/loop"] = Reply(status=307, headers={"Location": "/loop"})
        fetcher = make(host.origin, other.origin)  # both allowed: still no cross-origin hop
        assert (await fetcher.get(host.url("/here"), "image", soon())).body == png_bytes()
        with pytest.raises(AssetFailed, match="redirects to another origin"):
            await fetcher.get(host.url("/away"), "image", soon())
        with pytest.raises(AssetFailed, match="redirects more than 3 times"):
            await fetcher.get(host.url("/loop"), "image", soon())
        assert other.connections == 0


# Locations that pass the same-origin check but that httpx cannot turn into a request
# (it builds the next request of every redirect, even with follow_redirects=False).
UNFOLLOWABLE = [
    "http:%2F%2Fx",
    "http:\\\\x",
    "http:\\\\127.0.0.1\\a.png",
    "http:%2F%2F127.0.0.1/a.png",
]


@pytest.mark.parametrize("location", UNFOLLOWABLE)
async def test_a_redirect_the_client_cannot_follow_is_the_assets_502(
    host: AssetHost, make: Any, location: str
) -> None:
    host.routes["/r.png"] = Reply(status=302, headers={"Location": location})
    fetcher = make(host.origin)
    started = time.monotonic()
    with pytest.raises(AssetFailed) as failed:
        await fetcher.get(host.url("/r.png"), "image", soon())
    assert failed.value.status_code == 502 and host.url("/r.png") in failed.value.public_message
    with pytest.raises(AssetFailed) as inlined:
        await fetcher.inline("avatar", host.url("/r.png"))
    assert inlined.value.status_code == 502 and inlined.value.param == "avatar"
    card = fetcher.card()
    route = FakeRoute(FakeRequest(host.url("/r.png")))
    await card.handle(route)  # settled at once, not left to the render timeout
    assert route.settled == [("abort", "blockedbyclient")]
    with pytest.raises(AssetFailed):
        card.check()
    assert time.monotonic() - started < 2


class _Surprise(Exception):
    """What no code here expects: a bug, or a library raising something new."""


async def test_any_exception_settles_the_pages_request_and_is_a_502(
    host: AssetHost, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetcher = make(host.origin)

    async def broken(*args: object) -> None:
        raise _Surprise("a bug")

    monkeypatch.setattr(fetcher, "_get", broken)
    card = fetcher.card()
    route = FakeRoute(FakeRequest(host.url("/a.png")))
    await card.handle(route)
    assert route.settled == [("abort", "blockedbyclient")]
    with pytest.raises(AssetFailed) as failed:
        card.check()
    assert failed.value.status_code == 502 and host.url("/a.png") in failed.value.public_message
    with pytest.raises(AssetFailed):
        await fetcher.inline("avatar", host.url("/a.png"))


async def test_a_fulfil_that_fails_still_settles_the_request(host: AssetHost, make: Any) -> None:
    host.routes["/a.png"] = Reply(png_bytes(), "image/png")

    class Unfulfillable(FakeRoute):
        async def fulfill(self, **kwargs: Any) -> None:
            raise _Surprise("headers the browser will not take")

    card = make(host.origin).card()
    route = Unfulfillable(FakeRequest(host.url("/a.png")))
    await card.handle(route)
    assert route.settled == [("abort", "blockedbyclient")]
    with pytest.raises(AssetFailed):
        card.check()


async def test_a_card_asking_for_thousands_of_refused_assets_logs_one_line(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = make("http://127.0.0.1:9")
    card = fetcher.card()
    caplog.set_level(logging.INFO, logger="ogproxy")
    # As many as a page may have routed, and the rest refused by the page itself.
    for i in range(MAX_PAGE_REQUESTS):
        await card.handle(FakeRoute(FakeRequest(f"http://elsewhere.test/{i}.png")))
    card.blocked(5_000 - MAX_PAGE_REQUESTS, [("http://elsewhere.test/x.png", "img-src")])
    card.log_summary()
    (line,) = [r.getMessage() for r in caplog.records if r.name.startswith("ogproxy")]
    assert "5000 refused" in line and "elsewhere.test/0.png" in line
    assert len(card.failures) == fetcher_module.MAX_KEPT and fetcher.counts["refused"] == 5_000
    with pytest.raises(AssetRefused, match=r"elsewhere\.test/0\.png"):
        card.check()  # the first failure is still the render's error


async def test_a_timeout_names_the_limit_that_fired(host: AssetHost, make: Any) -> None:
    host.routes["/slow.png"] = Reply(png_bytes(), "image/png", delay=1.5)
    fetcher = make(host.origin, asset_timeout=0.3, card_timeout=8.0)
    with pytest.raises(AssetTimeout) as own:
        await fetcher.inline("avatar", host.url("/slow.png"))
    assert "within 0.3 s" in own.value.public_message
    assert "card" not in own.value.public_message
    with pytest.raises(AssetTimeout, match=r"within 0\.3 s"):
        await fetcher.get(host.url("/slow.png"), "image", fetcher.card().deadline)


async def test_a_failed_asset_is_not_cached(host: AssetHost, make: Any) -> None:
    fetcher = make(host.origin)
    with pytest.raises(AssetFailed, match="answered HTTP 404") as missing:
        await fetcher.get(host.url("/late.png"), "image", soon())
    assert missing.value.status_code == 502
    host.routes["/late.png"] = Reply(png_bytes(), "image/png")
    assert (await fetcher.get(host.url("/late.png"), "image", soon())).body == png_bytes()


async def test_a_name_resolving_to_loopback_is_refused(host: AssetHost, make: Any) -> None:
    host.routes["/a.png"] = Reply(png_bytes(), "image/png")
    fetcher = make(f"http://localhost:{host.port}")
    with pytest.raises(AssetRefused) as refused:
        await fetcher.get(f"http://localhost:{host.port}/a.png", "image", soon())
    assert "resolves to a non-public address" in refused.value.public_message
    assert "127.0.0.1" not in refused.value.public_message  # internal addresses stay in the log
    assert host.connections == 0


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("169.254.169.254", False),  # cloud metadata
        ("::ffff:169.254.169.254", False),
        ("2002:a9fe:a9fe::1", False),  # 6to4 wrapping the metadata address
        ("fd00:ec2::254", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("127.0.0.1", False),
        ("::1", False),
        ("0.0.0.0", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
    ],
)
def test_only_public_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


async def test_connects_to_the_address_it_checked(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DNS rebinding window: the name is resolved once, and that address is used."""
    answers = iter(["127.0.0.2", "127.0.0.3"])
    asked: list[str] = []

    async def resolve(name: str, port: int) -> list[str]:
        asked.append(name)
        return [next(answers)]

    # Stand in 127.0.0.2 for a public address; the policy itself is tested above.
    monkeypatch.setattr(fetcher_module, "is_public", lambda a: str(a) == "127.0.0.2")
    with asset_host("127.0.0.2") as checked:
        checked.routes["/a.png"] = Reply(png_bytes(), "image/png")
        fetcher = make(f"http://cdn.test:{checked.port}", resolve=resolve)
        asset = await fetcher.get(f"http://cdn.test:{checked.port}/a.png", "image", soon())
    assert asset.body == png_bytes() and asked == ["cdn.test"]
    assert checked.headers[0]["host"] == f"cdn.test:{checked.port}"


async def test_a_host_the_client_would_refuse_is_a_400_before_any_lookup(make: Any) -> None:
    """Full-width digits pass urlsplit and a wildcard, and getaddrinfo maps them (IDNA
    2003); httpx refuses them (IDNA 2008). Refused up front, as the client would."""
    asked: list[str] = []

    async def resolve(name: str, port: int) -> list[str]:
        asked.append(name)
        return ["93.184.216.34"]

    fetcher = make("http://*.example.com", resolve=resolve)
    for url in (
        "http://\uff11\uff12\uff17.example.com/a.png",  # full-width 127
        "http://a b.example.com/a.png",
        "http://a%2eb.example.com/a.png",
        "http://a\u200b.example.com/a.png",  # a zero-width space
    ):
        with pytest.raises(InvalidParam) as bad:
            await fetcher.inline("avatar", url)
        assert bad.value.status_code == 400 and bad.value.param == "avatar", url
    assert asked == []


async def test_a_host_is_matched_resolved_and_connected_to_in_one_spelling(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def resolve(name: str, port: int) -> list[str]:
        asked.append(name)
        return ["127.0.0.2"]

    monkeypatch.setattr(fetcher_module, "is_public", lambda a: str(a) == "127.0.0.2")
    with asset_host("127.0.0.2") as checked:
        checked.routes["/a.png"] = Reply(png_bytes(), "image/png")
        port = checked.port
        fetcher = make(
            f"http://*.example.com:{port}", f"http://*.b\u00fccher.test:{port}", resolve=resolve
        )
        for name in ("CDN\u3002example.com", "cdn.EXAMPLE.com.", "cdn\uff0eexample.com"):
            await fetcher.get(f"http://{name}:{port}/a.png", "image", soon())
        await fetcher.get(f"http://cdn.B\u00dcCHER.test:{port}/a.png", "image", soon())
    assert asked == ["cdn.example.com"] * 3 + ["cdn.xn--bcher-kva.test"]
    assert [h["host"] for h in checked.headers] == [f"cdn.example.com:{port}"] * 3 + [
        f"cdn.xn--bcher-kva.test:{port}"
    ]


async def test_stylesheets_are_fetched_with_a_browser_user_agent(
    host: AssetHost, make: Any
) -> None:
    host.routes["/css2"] = Reply(b"@font-face{}", "text/css")
    await make(host.origin).get(host.url("/css2?family=Inter:wght@800"), "stylesheet", soon())
    assert "Chrome/" in host.headers[0]["user-agent"]
    assert "cookie" not in host.headers[0] and "referer" not in host.headers[0]


async def test_max_age_is_honoured_and_no_store_is_not_kept(host: AssetHost, make: Any) -> None:
    host.routes["/keep.png"] = Reply(
        png_bytes(), "image/png", headers={"Cache-Control": "max-age=600"}
    )
    host.routes["/nostore.png"] = Reply(
        png_bytes(), "image/png", headers={"Cache-Control": "no-store"}
    )
    fetcher = make(host.origin)
    for _ in range(3):
        await fetcher.get(host.url("/keep.png"), "image", soon())
        await fetcher.get(host.url("/nostore.png"), "image", soon())
    assert host.hits.count("/keep.png") == 1 and host.hits.count("/nostore.png") == 3


async def test_a_stale_copy_stands_in_while_the_origin_fails(host: AssetHost, make: Any) -> None:
    host.routes["/logo.png"] = Reply(
        png_bytes(), "image/png", headers={"Cache-Control": "max-age=0"}
    )
    fetcher = make(host.origin)
    await fetcher.get(host.url("/logo.png"), "image", soon())
    host.routes["/logo.png"] = Reply(b"down", "text/plain", status=503)
    assert (await fetcher.get(host.url("/logo.png"), "image", soon())).body == png_bytes()
    assert fetcher.counts["stale"] == 1 and host.hits == ["/logo.png", "/logo.png"]
    host.routes["/logo.png"] = Reply(b"gone", "text/plain", status=404)
    with pytest.raises(AssetFailed, match="HTTP 404"):  # gone is gone: no stand-in
        await fetcher.get(host.url("/logo.png"), "image", soon())


async def test_concurrent_cards_fetch_one_logo_once(host: AssetHost, make: Any) -> None:
    host.routes["/logo.png"] = Reply(png_bytes(), "image/png", delay=0.3)
    fetcher = make(host.origin)
    got = await asyncio.gather(
        *(fetcher.get(host.url("/logo.png"), "image", soon()) for _ in range(50))
    )
    assert {a.body for a in got} == {png_bytes()} and host.hits == ["/logo.png"]


def test_allow_list_entries() -> None:
    allowed = AllowList(("https://*.example.com", "google-fonts", "http://127.0.0.1:8080"))
    yes = [
        "https://cdn.example.com/a.png",
        "https://a.b.example.com/a.png",
        "https://CDN.example.com./a.png",
        "https://fonts.googleapis.com/css2?family=Inter",
        "https://fonts.gstatic.com/s/inter/v1/x.woff2",
        "http://127.0.0.1:8080/a.png",
    ]
    no = [
        "https://example.com/a.png",
        "http://cdn.example.com/a.png",
        "https://cdn.example.com:8443/a.png",
        "https://evilexample.com/a.png",
        "https://example.com.evil.net/a.png",
        "http://fonts.googleapis.com/css2",
        "http://127.0.0.1:8081/a.png",
        "http://localhost:8080/a.png",
    ]
    assert all(allowed.allows(parse_origin(u)) for u in yes)
    assert not any(allowed.allows(parse_origin(u)) for u in no)


@pytest.mark.parametrize(
    "entry", ["cdn.example.com", "https://cdn.example.com/path", "https://*.10.0.0.1", "ftp://x"]
)
def test_a_bad_allow_list_entry_names_the_setting(entry: str) -> None:
    with pytest.raises(ConfigError, match="OGPROXY_ASSET_ORIGINS"):
        AllowList((entry,))


_URLISH = st.from_regex(
    r"(https?|ftp|data)://[\[\]0-9a-zA-Z.:@%_\-]{0,30}(/[ -~]{0,12})?", fullmatch=True
)


# Nothing allowed, so nothing is ever fetched: one client serves every example.
_NOTHING_ALLOWED = Fetcher(AllowList(()), AssetCache(None))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_URLISH, st.text(max_size=40)))
def test_any_image_url_shape_is_a_clear_error(url: str) -> None:
    """Never anything but the URL back or a 400 naming the parameter."""

    async def one() -> None:
        try:
            assert await _NOTHING_ALLOWED.inline("avatar", url) == url
            assert not url or url.startswith("data:image/")
        except InvalidParam as exc:
            assert exc.status_code == 400 and exc.param == "avatar"

    anyio.run(one)


# --- Fuzzed: whatever an origin answers or a URL spells, a clear error in time -----------

FETCH_FUZZ = settings(max_examples=50, deadline=None)


def _ended_well(outcome: BaseException | None) -> None:
    """Success, a 400 naming the parameter, or the asset's 4xx, 502 or 504: never a 500."""
    if outcome is None:
        return
    if isinstance(outcome, InvalidParam):
        assert outcome.param == "avatar"
        return
    assert isinstance(outcome, AssetError), repr(outcome)
    assert outcome.status_code < 500 or outcome.status_code in (502, 504), outcome.status_code


async def _timed(fetch: Any, seconds: float) -> BaseException | None:
    started = time.monotonic()
    try:
        await fetch
    except Exception as exc:
        return exc
    finally:
        assert time.monotonic() - started < seconds
    return None


@pytest.fixture(scope="module")
def redirecting() -> Iterator[AssetHost]:
    with asset_host() as server:
        server.routes["/a.png"] = Reply(png_bytes(), "image/png")
        yield server


# Header values are Latin-1 on the wire; controls included (the client refuses those).
_HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30)
LOCATIONS = st.one_of(
    st.builds(
        lambda *parts: "".join(parts),
        st.sampled_from(
            ["", "http:", "https:", "HTTP:", "http://", "http:/", "//", "/", "\\\\", "http:\\\\"]
        ),
        st.sampled_from(
            ["", "{host}", "127.0.0.1", "[::1", "[::1]", "x", "%2F%2Fx", "\uff11.0.0.1", "u@{host}"]
        ),
        st.sampled_from(["", ":", ":0", ":99999", ":{port}", ":a"]),
        st.sampled_from(["", "/", "/a.png", "\\a.png", "/%zz", "/a b", "?q", "#f", "/\u00e9"]),
    ),
    _HEADER_TEXT,
)


@FETCH_FUZZ
@given(location=LOCATIONS)
def test_any_redirect_location_ends_in_a_clear_error_in_time(
    redirecting: AssetHost, location: str
) -> None:
    host, port = redirecting.origin.split("//")[1].split(":")
    redirecting.routes["/r.png"] = Reply(
        status=302, headers={"Location": location.replace("{host}", host).replace("{port}", port)}
    )

    async def one() -> None:
        fetcher = Fetcher(AllowList((redirecting.origin,)), AssetCache(None), asset_timeout=2.0)
        try:
            _ended_well(await _timed(fetcher.get(redirecting.url("/r.png"), "image", soon()), 4))
            _ended_well(await _timed(fetcher.inline("avatar", redirecting.url("/r.png")), 4))
        finally:
            await fetcher.close()

    anyio.run(one)


_LABELS = st.sampled_from(
    ["cdn", "CDN", "127", "\uff11\uff12\uff17", "xn--", "xn--bcher-kva", "b\u00fccher", "\u00df",
     "a b", "%2e", "a\u200bb", "", "-", "_a", "0x7f", "127.0.0.1", "[::1]", "\u0430pple"]
)  # fmt: skip
HOSTS = st.one_of(
    st.builds(
        lambda labels, dots, suffix: dots.join(labels) + suffix,
        st.lists(_LABELS, min_size=1, max_size=3),
        st.sampled_from([".", "\u3002", "\uff0e", "\uff61", ".."]),
        st.sampled_from([".example.com", ".EXAMPLE.com.", "\uff0eexample.com", "", "."]),
    ),
    st.text(max_size=20),
)


@FETCH_FUZZ
@given(name=HOSTS)
def test_any_host_spelling_ends_in_a_clear_error_in_time(redirecting: AssetHost, name: str) -> None:
    """Against a loopback origin (listed), and names under a wildcard that "resolve" to
    it (stood in for a public address): matched, resolved and connected to as one."""
    port = redirecting.port

    async def resolve(host: str, port: int) -> list[str]:
        assert host.isascii() and host == host.lower(), host  # the one spelling
        return ["127.0.0.1"]

    async def one() -> None:
        allowed = AllowList((redirecting.origin, f"http://*.example.com:{port}"))
        fetcher = Fetcher(allowed, AssetCache(None), asset_timeout=2.0, resolve=resolve)
        try:
            url = f"http://{name}:{port}/a.png"
            _ended_well(await _timed(fetcher.inline("avatar", url), 4))
        finally:
            await fetcher.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fetcher_module, "is_public", lambda a: str(a) == "127.0.0.1")
        anyio.run(one)


def test_the_allow_list_as_csp_sources() -> None:
    allowed = AllowList(("google-fonts", "http://127.0.0.1:8080", "https://*.example.com"))
    assert allowed.sources() == (
        "http://127.0.0.1:8080 https://*.example.com:443 "
        "https://fonts.googleapis.com:443 https://fonts.gstatic.com:443"
    )
    # CSP has no IPv6 literal: its scheme, a larger set (the fetcher still decides).
    assert AllowList(("http://[::1]:9",)).sources() == "http:"
    assert AllowList(()).sources() == ""


async def test_what_the_page_refused_itself_is_recorded_as_the_fetcher_refuses_it(
    tmp_path: Any,
) -> None:
    fetcher = Fetcher(AllowList(("https://cdn.example.com",)), AssetCache(tmp_path / "assets"))
    try:
        card = fetcher.card()
        assert "img-src data: blob: https://cdn.example.com:443;" in card.policy
        assert "connect-src" not in card.policy  # default-src: nothing over the network
        card.blocked(
            7000,
            [
                ("https://flood.example/a.png", "img-src"),
                ("https://flood.example/api", "connect-src"),
                ("https://flood.example/app.js", "script-src-elem"),
                ("https://flood.example/x", "frame-src"),
                ("https://flood.example/y", "no-such-directive"),
            ],
        )
        messages = [exc.public_message for exc in card.failures]
        assert messages == [
            "https://flood.example/a.png is not from an allowed origin: add "
            "https://flood.example to OGPROXY_ASSET_ORIGINS to load it",
            *(
                f"https://flood.example/{path}: a card loads images, stylesheets and fonts only "
                f"(this was a {kind} request)"
                for path, kind in [("api", "fetch"), ("app.js", "script"), ("x", "document"),
                                   ("y", "other")]
            ),
        ]  # fmt: skip
        assert card.counts["refused"] == 7000 and fetcher.counts["refused"] == 7000
        with pytest.raises(AssetRefused, match=r"a\.png is not from an allowed origin"):
            card.check()
    finally:
        await fetcher.close()


async def test_past_the_request_limit_the_page_is_flooded_strict_or_not(tmp_path: Any) -> None:
    fetcher = Fetcher(AllowList(()), AssetCache(tmp_path / "assets"))
    try:
        card = fetcher.card(strict=False)
        for i in range(MAX_PAGE_REQUESTS):
            await card.handle(FakeRoute(FakeRequest(f"http://127.0.0.1:9/{i}")))  # type: ignore[arg-type]
        assert not card.flooded.is_set()
        card.check()  # not strict: rendered without them
        route = FakeRoute(FakeRequest("http://127.0.0.1:9/last"))
        await card.handle(route)  # type: ignore[arg-type]
        assert card.flooded.is_set() and route.settled  # settled all the same
        assert len(card.failures) == fetcher_module.MAX_KEPT
        with pytest.raises(InvalidDocument, match=f"more than {MAX_PAGE_REQUESTS} requests"):
            card.check()
    finally:
        await fetcher.close()
