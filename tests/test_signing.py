from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ogproxy import sign_url, verify_url
from ogproxy.config import Settings
from ogproxy.errors import BadSignature, ConfigError
from ogproxy.signing import canonical_query, is_canonical, parse_query, verify_query
from tests.support.cards import signed

FILE = json.loads((Path(__file__).parent.parent / "spec" / "vectors.json").read_text())
VECTORS = FILE["vectors"]
SECRET_CASES = FILE["secrets"]["cases"]
LIMIT_CASES = FILE["limits"]["cases"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors(vector: dict[str, Any]) -> None:
    url = sign_url(
        "https://og.example.com" + vector["path"],
        vector["secret"],
        [tuple(p) for p in vector["params"]],
    )
    query = urlsplit(url).query
    assert query == f"{vector['canonical_query']}&sig={vector['sig']}"
    pairs = verify_query(vector["path"], query, [vector["secret"]])
    assert f"{vector['path']}?{canonical_query(pairs)}" == vector["message"]


def test_issue_example() -> None:
    url = sign_url(
        "https://og.example.com/og.png",
        "correct horse battery staple",
        {
            "title": "Hello, wörld & friends 🚀",
            "subtitle": "Marcus Chen · 8 min read",
            "template": "gradient",
            "accentColor": "#6366f1",
        },
    )
    assert url.endswith("&sig=FcoihTv6fozfqhF5gogl9kch_CA9wK9ZFJmufS99PNs")


def test_bare_origin_gets_default_path() -> None:
    url = sign_url("https://og.example.com", "s" * 20, {"title": "x"})
    assert url.startswith("https://og.example.com/og.png?title=x&sig=")
    assert verify_url(url, "s" * 20) == {"title": "x"}


def _swap(url: str, old: str, new: str) -> str:
    assert old in url
    return url.replace(old, new)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: _swap(u, "title=Hello", "title=Hellp"),
        lambda u: _swap(u, "&sig=", "&extra=1&sig="),
        lambda u: _swap(u, "template=minimal&", ""),
        lambda u: u[:-1] + ("A" if u[-1] != "A" else "B"),
        lambda u: u.split("&sig=")[0],
        lambda u: u + "&sig=AAAA",
        lambda u: _swap(u, "/og.png", "/og.webp"),
    ],
)
def test_tampering_is_refused(tamper: Callable[[str], str]) -> None:
    url = sign_url("https://h/og.png", "s" * 20, {"title": "Hello", "template": "minimal"})
    with pytest.raises(BadSignature):
        verify_url(tamper(url), "s" * 20)


def test_order_and_encoding_do_not_matter() -> None:
    url = sign_url("https://h/og.png", "s" * 20, {"title": "a b~c", "template": "minimal"})
    sig = url.split("&sig=")[1]
    for query in (
        f"template=minimal&title=a%20b~c&sig={sig}",
        f"sig={sig}&title=a+b%7Ec&template=minimal",
        f"title=a%20b%7ec&sig={sig}&template=min%69mal",
    ):
        assert verify_url(f"https://h/og.png?{query}", "s" * 20)["title"] == "a b~c"


def test_rotation_last_signs_all_verify() -> None:
    old, new, other = "old-secret-0123456789", "new-secret-0123456789", "other-secret-012345678"
    by_old = sign_url("https://h/og.png", old, {"title": "x"})
    by_both = sign_url("https://h/og.png", [old, new], {"title": "x"})
    assert by_both == sign_url("https://h/og.png", new, {"title": "x"})
    for url in (by_old, by_both):
        assert verify_url(url, [old, new]) == {"title": "x"}
    with pytest.raises(BadSignature):
        verify_url(by_old, [other, new])


def test_non_utf8_and_garbage_queries_are_bad_signatures_not_crashes() -> None:
    for raw in (b"title=%ff%fe&sig=abc", b"&&&=&sig=%%%", b"sig=" + b"\xff" * 10, b"sig", b""):
        with pytest.raises(BadSignature):
            verify_query("/og.png", raw, ["s" * 20])


def test_parse_query_decodes_plus_and_percent() -> None:
    assert parse_query("a=1+2&b=%2B&c&=x") == [
        (b"a", b"1 2"),
        (b"b", b"+"),
        (b"c", b""),
        (b"", b"x"),
    ]


def test_sig_is_reserved() -> None:
    with pytest.raises(ValueError, match="reserved"):
        sign_url("https://h/og.png", "s" * 20, {"sig": "x", "title": "y"})


def _respell_sig(url: str, change: Callable[[str], str]) -> str:
    base, sig = url.split("&sig=")
    return f"{base}&sig={change(sig)}"


def _flip_low_bits(sig: str) -> str:
    # The last of 43 characters carries 4 bits of the digest and 2 padding bits that a
    # lenient decoder ignores: this spelling decodes to the same 32 bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return sig[:-1] + alphabet[alphabet.index(sig[-1]) | 1]


@pytest.mark.parametrize(
    "respell",
    [
        lambda s: s + "=",
        lambda s: s + "==",
        lambda s: s + "=x",
        lambda s: s[:10] + "!!" + s[10:],
        lambda s: s.replace("-", "+").replace("_", "/") if ("-" in s or "_" in s) else s + "+",
        _flip_low_bits,
        lambda s: "%" + format(ord(s[0]), "02X") + s[1:],  # percent-encoded character
        lambda s: s[:20] + "%0A" + s[20:],
        lambda s: s + "%3D",
    ],
)
def test_exactly_one_spelling_of_the_signature(respell: Callable[[str], str]) -> None:
    url = sign_url("https://h/og.png", "s" * 20, {"title": "Hello"})
    assert verify_url(url, "s" * 20) == {"title": "Hello"}
    other = _respell_sig(url, respell)
    assert other != url
    with pytest.raises(BadSignature):
        verify_url(other, "s" * 20)


def test_canonical_spelling_is_recognised() -> None:
    url = sign_url("https://h/og.png", "s" * 20, {"title": "a b", "template": "minimal"})
    query = url.split("?", 1)[1].encode()
    assert is_canonical(query, verify_query("/og.png", query, ["s" * 20]))
    for other in (
        query.replace(b"%20", b"+"),
        b"&" + query,
        query.replace(b"template", b"%74emplate"),
        b"sig=" + query.split(b"&sig=")[1] + b"&" + query.split(b"&sig=")[0],
    ):
        assert not is_canonical(other, verify_query("/og.png", other, ["s" * 20])), other


@pytest.mark.parametrize("case", SECRET_CASES, ids=[c["name"] for c in SECRET_CASES])
def test_the_secret_rule(case: dict[str, Any]) -> None:
    """sign_url reads a secret string like the server reads OGPROXY_SECRET."""
    params = [tuple(p) for p in case.get("params", [["title", "x"]])]
    if case.get("error"):
        with pytest.raises(ValueError, match="16 bytes"):
            sign_url("https://og.example.com/og.png", case["env"], params)
        with pytest.raises(ConfigError):
            Settings.from_env({"OGPROXY_SECRET": case["env"], "OGPROXY_DEV": ""})
        return
    url = sign_url("https://og.example.com/og.png", case["env"], params)
    assert url.endswith("&sig=" + case["sig"])
    settings = Settings.from_env({"OGPROXY_SECRET": case["env"]})
    assert settings.signing_secrets[-1] == case["signing_secret"]
    assert verify_url(url, settings.signing_secrets) == dict(params)


@pytest.mark.anyio
@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c["name"] for c in LIMIT_CASES])
async def test_the_limits_signers_check_are_the_servers(
    case: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """What the signers' opt-in check refuses (spec/vectors.json, `limits`) is what the
    server refuses: 400 naming the parameter, 414 for the whole query; else a card."""
    response = await client.get(signed([tuple(p) for p in case["params"]]))
    if case["refused"] is None:
        assert response.status_code == 200, response.text
    elif case["refused"] == "query":
        assert response.status_code == 414, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["param"] == case["refused"]
