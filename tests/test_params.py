"""The input boundary, as tables: what `parse_card` makes of each query, and what it refuses.

Adding a query parameter means a row here, beside its line in `params.py` and a template.
"""

from __future__ import annotations

from typing import Any

import pytest

from ogproxy.errors import InvalidParam
from ogproxy.params import (
    MAX_EXTRA,
    MAX_HTML,
    MAX_IMAGE_URL,
    MAX_OUTPUT_PIXELS,
    MAX_SUBTITLE,
    MAX_TITLE,
    CardParams,
    Output,
    ParamSpec,
    TemplateSpec,
    json_pairs,
    parse_card,
)

TEMPLATES = {
    "default": TemplateSpec(
        "#2563eb",
        (
            ParamSpec("author"),
            ParamSpec("avatar", "image"),
            ParamSpec("theme", "choice", ("light", "dark")),
        ),
    ),
    "minimal": TemplateSpec("#111827"),
}


def parse(
    query: dict[str, str | bytes] | list[tuple[str, str | bytes]], output: Output | None = None
) -> tuple[CardParams, Output]:
    items = query.items() if isinstance(query, dict) else query
    pairs = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in items]
    return parse_card(pairs, TEMPLATES, output or Output())


DEFAULT_EXTRA = (("author", ""), ("avatar", ""), ("theme", "light"))

# query -> the card's fields that differ from a plain {"title": "Hi"} card on `default`.
VALID: list[tuple[dict[str, str | bytes], dict[str, Any]]] = [
    ({"title": "Hi"}, {}),
    ({"title": "  Hi  "}, {}),  # trimmed
    ({"title": "Cafe\u0301"}, {"title": "Caf\u00e9"}),  # NFC
    ({"title": "x" * MAX_TITLE}, {"title": "x" * MAX_TITLE}),
    ({"title": "Hi", "subtitle": "s" * MAX_SUBTITLE}, {"subtitle": "s" * MAX_SUBTITLE}),
    ({"title": "Hi", "subtitle": ""}, {}),
    ({"title": "Hi", "template": "minimal"}, {"template": "minimal", "accent_color": "#111827"}),
    ({"title": "Hi", "accentColor": "#ABC"}, {"accent_color": "#aabbcc"}),
    ({"title": "Hi", "accentColor": "#12Ab9F"}, {"accent_color": "#12ab9f"}),
    ({"title": "Hi", "accentColor": " #fff "}, {"accent_color": "#ffffff"}),
    (
        {"title": "Hi", "theme": "dark"},
        {"extra": (("author", ""), ("avatar", ""), ("theme", "dark"))},
    ),
    (
        {"title": "Hi", "author": "Ann Lee"},
        {"extra": (("author", "Ann Lee"), ("avatar", ""), ("theme", "light"))},
    ),
    (
        {"title": "Hi", "avatar": "https://cdn.example/a.png"},
        {"extra": (("author", ""), ("avatar", "https://cdn.example/a.png"), ("theme", "light"))},
    ),
    (
        {"title": "Hi", "avatar": "data:image/png;base64,AAAA"},
        {"extra": (("author", ""), ("avatar", "data:image/png;base64,AAAA"), ("theme", "light"))},
    ),
    ({"title": "Hi", "avatar": ""}, {}),
    ({"title": "Hi", "v": "2024.1_a-b"}, {"version": "2024.1_a-b"}),
    ({"html": "<h1>x</h1>"}, {"title": "", "html": "<h1>x</h1>"}),
    ({"html": "<h1>x</h1>", "title": "T"}, {"title": "T", "html": "<h1>x</h1>"}),
    (
        {"title": "\u0645\u0631\u062d\u0628\u0627 \U0001f680"},
        {"title": "\u0645\u0631\u062d\u0628\u0627 \U0001f680"},
    ),
]


@pytest.mark.parametrize(("query", "changes"), VALID, ids=[str(q)[:60] for q, _ in VALID])
def test_valid_cards(query: dict[str, str | bytes], changes: dict[str, Any]) -> None:
    expected: dict[str, Any] = {
        "template": "default",
        "title": "Hi",
        "subtitle": "",
        "accent_color": "#2563eb",
        "extra": DEFAULT_EXTRA if changes.get("template", "default") == "default" else (),
        "html": None,
        "version": "",
    }
    expected.update(changes)
    card, output = parse(query)
    assert card == CardParams(**expected)
    assert output == Output()


# query -> the output, from the server's defaults for a PNG, JPEG or WebP endpoint.
OUTPUTS: list[tuple[dict[str, str | bytes], Output, Output]] = [
    ({"width": "1080", "height": "1080"}, Output(), Output(width=1080, height=1080)),
    ({"width": "200", "height": "2400"}, Output(), Output(width=200, height=2400)),
    ({"scale": "2"}, Output(), Output(scale=2)),
    ({"scale": "1"}, Output(), Output()),
    ({"palette": "1"}, Output(), Output(palette=True)),
    ({"palette": "true"}, Output(), Output(palette=True)),
    ({"palette": "TRUE"}, Output(), Output(palette=True)),
    ({"palette": "0"}, Output(palette=True), Output()),
    ({"palette": "false"}, Output(), Output()),
    ({"palette": "0"}, Output(format="jpeg"), Output(format="jpeg")),
    ({"quality": "1"}, Output(format="jpeg"), Output(format="jpeg", quality=1)),
    ({"quality": "100"}, Output(format="webp"), Output(format="webp", quality=100)),
    ({}, Output(palette=True), Output(palette=True)),
    ({"width": "2400", "height": "1700", "scale": "2"}, Output(), Output(2400, 1700, scale=2)),
]


@pytest.mark.parametrize(("query", "defaults", "expected"), OUTPUTS)
def test_outputs(query: dict[str, str], defaults: Output, expected: Output) -> None:
    assert parse({"title": "Hi", **query}, defaults)[1] == expected


# query -> (the parameter named, words in its message).
INVALID: list[tuple[dict[str, str | bytes] | list[tuple[str, str | bytes]], str, str]] = [
    ({}, "title", "is required"),
    ({"subtitle": "no title"}, "title", "is required"),
    ({"title": ""}, "title", "must not be empty"),
    ({"title": "   "}, "title", "must not be empty"),
    ({"title": "x" * (MAX_TITLE + 1)}, "title", f"at most {MAX_TITLE}"),
    ({"title": "Hi", "subtitle": "s" * (MAX_SUBTITLE + 1)}, "subtitle", f"at most {MAX_SUBTITLE}"),
    ({"title": "Hi", "author": "a" * (MAX_EXTRA + 1)}, "author", f"at most {MAX_EXTRA}"),
    ({"title": b"\xff\xfe"}, "title", "not valid UTF-8"),
    ({"title": "a\x00b"}, "title", "control characters"),
    ({"title": "a\nb"}, "title", "control characters"),
    ({"title": "a\u2028b"}, "title", "control characters"),
    ({"title": "a\x85b"}, "title", "control characters"),
    ([("title", "a"), ("title", "b")], "title", "more than once"),
    ({"title": "Hi", "template": "nope"}, "template", "unknown template 'nope'"),
    ({"title": "Hi", "template": ""}, "template", "must not be empty"),
    ({"title": "Hi", "bogus": "1"}, "bogus", "unknown parameter"),
    ({"title": "Hi", "template": "minimal", "author": "A"}, "author", "unknown parameter"),
    ({"title": "Hi", "accentColor": "red"}, "accentColor", "not a colour"),
    ({"title": "Hi", "accentColor": "#12345"}, "accentColor", "not a colour"),
    ({"title": "Hi", "accentColor": "#ggg"}, "accentColor", "not a colour"),
    ({"title": "Hi", "accentColor": ""}, "accentColor", "must not be empty"),
    ({"title": "Hi", "theme": "blue"}, "theme", "not one of light, dark"),
    ({"title": "Hi", "theme": ""}, "theme", "must not be empty"),
    ({"title": "Hi", "avatar": "ftp://x/a.png"}, "avatar", "http(s):// URL or a data:image/"),
    ({"title": "Hi", "avatar": "javascript:alert(1)"}, "avatar", "http(s):// URL"),
    ({"title": "Hi", "avatar": "data:text/html,x"}, "avatar", "data:image/"),
    (
        {"title": "Hi", "avatar": "https://x.example/" + "a" * MAX_IMAGE_URL},
        "avatar",
        f"longer than {MAX_IMAGE_URL}",
    ),
    ({"title": "Hi", "avatar": "http://[::1/a.png"}, "avatar", "not a valid URL"),
    ({"title": "Hi", "avatar": "http://x.example:99999/a.png"}, "avatar", "not a valid URL"),
    ({"title": "Hi", "avatar": "https:///a.png"}, "avatar", "without a host"),
    ({"html": ""}, "html", "must not be empty"),
    ({"html": "  \n "}, "html", "must not be empty"),
    ({"html": b"<h1>\xff</h1>"}, "html", "not valid UTF-8"),
    ({"html": "x" * (MAX_HTML + 1)}, "html", f"at most {MAX_HTML}"),
    ({"title": "Hi", "v": "two words"}, "v", "letters, digits"),
    ({"title": "Hi", "v": "x" * 33}, "v", "at most 32"),
    ({"title": "Hi", "width": "199"}, "width", "from 200 to 2400"),
    ({"title": "Hi", "width": "2401"}, "width", "from 200 to 2400"),
    ({"title": "Hi", "height": "-5"}, "height", "whole number"),
    ({"title": "Hi", "height": "6.5"}, "height", "whole number"),
    ({"title": "Hi", "width": "1e3"}, "width", "whole number"),
    (
        {"title": "Hi", "width": "\u0661\u0662\u0660\u0660"},
        "width",
        "whole number",
    ),  # Arabic digits
    ({"title": "Hi", "width": "\u00b2"}, "width", "whole number"),  # isdigit(), but int() raises
    ({"title": "Hi", "width": ""}, "width", "must not be empty"),
    ({"title": "Hi", "width": "123456789"}, "width", "at most 8"),
    ({"title": "Hi", "scale": "3"}, "scale", "from 1 to 2"),
    ({"title": "Hi", "scale": "0"}, "scale", "from 1 to 2"),
    ({"title": "Hi", "palette": "yes"}, "palette", "not one of 1, 0, true, false"),
    ({"title": "Hi", "palette": ""}, "palette", "must not be empty"),
    ({"title": "Hi", "quality": "90"}, "quality", "only applies to JPEG and WebP"),
    (
        {"title": "Hi", "width": "2400", "height": "2400", "scale": "2"},
        "scale",
        f"at most {MAX_OUTPUT_PIXELS:,}",
    ),
]


@pytest.mark.parametrize(
    ("query", "param", "words"), INVALID, ids=[str(q)[:60] for q, _, _ in INVALID]
)
def test_invalid_cards_name_the_parameter(
    query: dict[str, str | bytes] | list[tuple[str, str | bytes]], param: str, words: str
) -> None:
    with pytest.raises(InvalidParam) as raised:
        parse(query)
    assert raised.value.param == param
    assert raised.value.status_code == 400
    assert words in str(raised.value.public_message), raised.value.public_message


# Refused only for the formats they do not apply to.
FORMAT_RULES: list[tuple[dict[str, str], Output, str]] = [
    ({"palette": "1"}, Output(format="jpeg"), "palette"),
    ({"palette": "true"}, Output(format="webp"), "palette"),
    ({"quality": "50"}, Output(format="png"), "quality"),
    ({"quality": "0"}, Output(format="jpeg"), "quality"),
    ({"quality": "101"}, Output(format="webp"), "quality"),
]


@pytest.mark.parametrize(("query", "defaults", "param"), FORMAT_RULES)
def test_output_rules_per_format(query: dict[str, str], defaults: Output, param: str) -> None:
    with pytest.raises(InvalidParam) as raised:
        parse({"title": "Hi", **query}, defaults)
    assert raised.value.param == param


def test_a_long_unknown_name_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidParam) as raised:
        parse({"title": "Hi", "n" * 5000: "1"})
    assert raised.value.param == "n" * 40


# JSON values (a POST body, a row of `ogproxy render`) -> the pairs a query would give.
JSON: list[tuple[dict[str, Any], list[tuple[bytes, bytes]]]] = [
    ({"title": "x"}, [(b"title", b"x")]),
    ({"width": 600}, [(b"width", b"600")]),
    ({"width": 600.0}, [(b"width", b"600.0")]),
    ({"palette": True}, [(b"palette", b"true")]),
    ({"palette": False}, [(b"palette", b"false")]),
    ({"subtitle": None, "title": "x"}, [(b"title", b"x")]),
    ({"title": "caf\u00e9"}, [(b"title", "caf\u00e9".encode())]),
]


@pytest.mark.parametrize(("body", "pairs"), JSON)
def test_json_fields_become_query_pairs(
    body: dict[str, Any], pairs: list[tuple[bytes, bytes]]
) -> None:
    assert json_pairs(body) == pairs


@pytest.mark.parametrize("value", [{"a": 1}, [1], ["x"], {}])
def test_json_values_that_are_not_scalars_are_refused(value: Any) -> None:
    with pytest.raises(InvalidParam) as raised:
        json_pairs({"title": value})
    assert raised.value.param == "title"


def test_a_json_float_width_is_refused_by_the_parser() -> None:
    with pytest.raises(InvalidParam) as raised:
        parse_card(json_pairs({"title": "x", "width": 600.5}), TEMPLATES)
    assert raised.value.param == "width"
