"""The formats table: every format is served, named, typed and written from one row."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Route

from ogproxy.app import create_app
from ogproxy.encoder import encode
from ogproxy.formats import ENDPOINTS, FORMATS, for_file
from ogproxy.meta import meta_tags
from ogproxy.params import Output
from ogproxy.templates import Document
from tests.support.cards import make_settings
from tests.support.fake import card_pixels


def test_every_endpoint_is_a_route(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    assert set(ENDPOINTS) <= paths
    assert set(ENDPOINTS.values()) == set(FORMATS)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("card.png", "png"), ("a.b.JPG", "jpeg"), ("x.jpeg", "jpeg"), ("x.webp", "webp")],
)
def test_file_suffixes(name: str, fmt: str) -> None:
    row = for_file(name)
    assert row is not None and row.name == fmt


@pytest.mark.parametrize("name", ["card.gif", "card", "png", ".png.txt"])
def test_unknown_file_suffixes(name: str) -> None:
    assert for_file(name) is None


def test_meta_tags_carry_the_media_type() -> None:
    for row in FORMATS.values():
        tags = meta_tags("https://og.example/x", Output(format=row.name))
        assert f'content="{row.media_type}"' in tags


def test_each_format_knows_its_own_files_and_no_other() -> None:
    raw = card_pixels(Document("<p>x</p>", None, {}), Output(width=200, height=200))
    files = {name: encode(raw, name) for name in FORMATS}
    for name, row in FORMATS.items():
        assert [other for other, data in files.items() if row.matches(data)] == [name]
        assert not row.matches(b"") and not row.matches(files[name][:2])
