"""Where an untrusted page's policy goes, and what its count can say (pagepolicy.py).

In a browser: tests/test_request_floods.py. Here, the placement as the HTML tokenizer
reads what comes before a doctype, and the report read back from a page that may have
tampered with it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ogproxy import pagepolicy
from ogproxy.pagepolicy import _guard_at, guarded, report
from ogproxy.params import MAX_HTML

DOCTYPE = "<!doctype html>"


@pytest.mark.parametrize(
    ("before", "after_doctype"),
    [
        ("", True),
        ("\n\t \r\f", True),
        ("<!-- a card -->\n", True),
        ("<!---->", True),
        ("<!-->", True),  # a whole (empty) comment to HTML
        ("<!--->", True),
        ("<!-- a --!>", True),
        ("<!-- a -- b -->", True),
        ('<?xml version="1.0" encoding="UTF-8"?>\n', True),  # a bogus comment
        ("<!bogus>", True),
        ("<![CDATA[x]]>", True),
        ("</>", True),  # an end tag with no name: nothing
        ("</ x>", True),  # no tag name: a bogus comment
        ("\x0b", False),  # a vertical tab is text to HTML (not to Python's \s)
        ("\ufeff", False),  # so is a BOM inside a string
        ("x", False),
        ("<p>", False),
        ("</p>", False),  # an end tag
        ("<!-- never closed ", False),
        ("<!--><p>x</p><!-- -->", False),
    ],
)
def test_the_policy_goes_after_a_doctype_only_comments_precede(
    before: str, after_doctype: bool
) -> None:
    html = before + DOCTYPE + "<h1>card</h1>"
    at = _guard_at(html)
    assert at == (len(before) + len(DOCTYPE) if after_doctype else 0)


@pytest.mark.parametrize(
    "html",
    ["<h1>no doctype</h1>", "<!DOCTYPE html", "<!doctype html PUBLIC '>' x>", ""],
)
def test_without_a_whole_doctype_first_it_goes_first(html: str) -> None:
    assert _guard_at(html) in (0, html.find(">") + 1)
    assert guarded(html, "default-src 'none'").startswith(html[: _guard_at(html)] + "<meta ")


def test_the_scan_is_linear_on_many_comments() -> None:
    """A regular expression took days on 287 bytes of empty comments, on the event loop."""
    code = (
        "from ogproxy.pagepolicy import guarded\n"
        "guarded('<!---->' * 40 + '<body>x', 'default-src data:')\n"
        "guarded('<!---->' * 40_000 + '<!-- -' * 40_000, 'default-src data:')\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=10, check=True)


def test_the_policy_cannot_end_the_script_it_is_in() -> None:
    html = guarded("<p>x</p>", "img-src https://a.example:443 </script><script>alert(1)")
    assert html.count("</script>") == 1
    assert "&lt;/script&gt;" in html  # in the meta, escaped


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([2, "https://a/x\nconnect-src\nhttps://a/y.png\nimg-src\n"],
         (2, [("https://a/x", "connect-src"), ("https://a/y.png", "img-src")])),
        ([7000.0, "u\nimg-src\n"], (7000, [("u", "img-src")])),
        ([0, ""], (0, [])),
        (None, (0, [])),
        ([float("nan"), ""], (0, [])),
        ([True, ""], (0, [])),
        ([-1, ""], (0, [])),
        ([10**12, ""], (0, [])),
        ([3, 5], (0, [])),
        ([1, "a\nb\n", "extra"], (0, [])),
        ({"n": 1}, (0, [])),
        ([1, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n"], (5, [("a", "b"), ("c", "d"), ("e", "f"),
                                                          ("g", "h"), ("i", "j")])),
    ],
)  # fmt: skip
def test_the_report_is_read_as_data_or_as_nothing(
    value: object, expected: tuple[int, list[tuple[str, str]]]
) -> None:
    assert report(value) == expected


def test_without_a_fetcher_nothing_goes_over_the_network() -> None:
    assert pagepolicy.NO_REQUESTS == "default-src data: blob: 'unsafe-inline' 'unsafe-eval'"


# Found by a second review: a scan quadratic on --!> comments, and whitespace written as
# character references, which the tokenizer ignores before a doctype as it does spaces.
@pytest.mark.parametrize("comment", ["<!----!>", "<!--a--!>", "<!--!--!>"])
def test_comments_closed_by_bang_are_scanned_linearly(comment: str) -> None:
    """Each ``--!>`` comment searched for ``-->`` up to the end: O(n^2), ~26 s at MAX_HTML."""
    code = (
        "from ogproxy.pagepolicy import guarded\n"
        f"guarded({comment!r} * ({MAX_HTML} // {len(comment)}) + '<p>x', 'default-src data:')\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=5, check=True)


@pytest.mark.parametrize(
    "before",
    [
        "&#32;",
        "&#x20;",
        "&#9;",
        "&#10;",
        "&#x0a",
        "&#12;",
        "&#13;",
        "&Tab;",
        "&NewLine;",
        "\n&#32; <!-- c -->&#x0000020;",
    ],
)
def test_whitespace_character_references_before_the_doctype_are_whitespace(before: str) -> None:
    html = before + DOCTYPE + "<h1>card</h1>"
    assert _guard_at(html) == len(before) + len(DOCTYPE)


@pytest.mark.parametrize("before", ["&nbsp;", "&#xa0;", "&#11;", "&amp;", "&Tab", "&#32x"])
def test_other_character_references_are_content(before: str) -> None:
    """Guard for the fix: these are text (or, "&Tab" without ";", not a reference)."""
    assert _guard_at(before + DOCTYPE + "x") == 0
