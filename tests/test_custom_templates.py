"""Custom templates are the operator's files, but still hostile input in the sense that
matters: they are sandboxed, confined to their folder and bounded in time."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ogproxy.app import create_app
from ogproxy.config import TEMPLATES_DIR
from ogproxy.errors import ConfigError
from ogproxy.templates import TemplateSet
from tests.support.cards import make_settings, running, signed
from tests.support.fake import FakeRenderer

pytestmark = pytest.mark.anyio


def folder_with(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.html").write_text(text)
    return folder


def test_a_link_to_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "private.txt"
    outside.write_text("PRIVATE-KEY-MATERIAL")
    folder = folder_with(tmp_path)
    (folder / "leak.html").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        TemplateSet(folder, TEMPLATES_DIR)


def test_an_include_through_a_link_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.html"
    outside.write_text("PRIVATE-KEY-MATERIAL")
    folder = folder_with(tmp_path, card='<h1>{{ title }}</h1>{% include "_inc.html" %}')
    (folder / "_inc.html").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        TemplateSet(folder, TEMPLATES_DIR)


def test_a_link_inside_the_folder_is_fine(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, card="<h1>{{ title }}</h1>")
    (folder / "alias.html").symlink_to(folder / "card.html")
    assert "alias" in TemplateSet(folder, TEMPLATES_DIR).templates


@pytest.mark.parametrize(
    "source",
    [
        # Spelled so that the start-up check cannot see it: the sandbox still holds.
        "{{ cycler|attr('_' ~ '_init__')|attr('_' ~ '_globals__') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ title.__class__.__init__.__globals__ }}",
        "{{ no_such_variable }}",
        '{% include "_missing.html" %}',
    ],
)
def test_a_template_that_cannot_render_is_refused_at_start(tmp_path: Path, source: str) -> None:
    folder = folder_with(tmp_path, bad=f"<h1>{{{{ title }}}}</h1>{source}")
    with pytest.raises(ConfigError, match="bad"):
        create_app(make_settings(tmp_path, templates_dir=folder))


@pytest.mark.parametrize(
    "trap",
    [
        # Spelled so that the start-up check cannot see it: the sandbox still holds.
        "{{ cycler|attr('_' ~ '_init__')|attr('_' ~ '_globals__') }}",
        # One big-integer operation held the GIL for two minutes.
        "{{ (((9 ** 64) ** 64) ** 64) ** 64 }}",
        # Recursion was a 500.
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
async def test_the_sandbox_holds_at_request_time(tmp_path: Path, trap: str) -> None:
    folder = folder_with(
        tmp_path, sneaky='<h1>{{ title }}</h1>{% if title == "go" %}' + trap + "{% endif %}"
    )
    settings = make_settings(tmp_path, templates_dir=folder)
    async with running(settings, FakeRenderer()) as (_, client):
        started = time.monotonic()
        response = await client.get(signed({"title": "go", "template": "sneaky"}))
        assert response.status_code == 422, response.text
        assert time.monotonic() - started < 5
        assert response.headers["cache-control"] == "no-store"
        assert "__builtins__" not in response.text
        assert (
            await client.get(signed({"title": "fine", "template": "sneaky"}))
        ).status_code == 200


async def test_template_rendering_is_inside_the_render_timeout(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        slow='<h1>{{ title }}</h1>{% if title == "slow" %}{% for a in range(100000) %}'
        "{% for b in range(100000) %}{% endfor %}{% endfor %}{% endif %}",
    )
    settings = make_settings(tmp_path, templates_dir=folder, render_timeout=0.6)
    async with running(settings, FakeRenderer()) as (_, client):
        started = time.monotonic()
        response = await client.get(signed({"title": "slow", "template": "slow"}))
        assert response.status_code == 504, response.text
        assert time.monotonic() - started < 2
        assert (await client.get(signed({"title": "next"}))).status_code == 200


def test_built_in_templates_are_trusted_and_overrides_are_not(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, card="<h1>{{ title }}</h1>")
    shutil.copy(TEMPLATES_DIR / "minimal.html", folder / "minimal.html")
    templates = TemplateSet(folder, TEMPLATES_DIR)
    assert templates.templates["default"].trusted
    assert not templates.templates["card"].trusted
    assert not templates.templates["minimal"].trusted  # same bytes, but the operator's file
    assert all(t.trusted for t in TemplateSet(folder, TEMPLATES_DIR, trust=True).templates.values())


def test_a_loop_with_no_call_and_no_output_stops_at_the_deadline(tmp_path: Path) -> None:
    """Nested loops over a long string: nothing in them was ever checked, so the thread
    spun on for minutes after its 504 (issue 19). Now every iteration is."""
    import threading

    from ogproxy.errors import RenderTimeout
    from ogproxy.params import CardParams

    folder = folder_with(
        tmp_path,
        spin='<h1>{{ title }}</h1>{% if title == "spin" %}{% set s = "x" * 100000 %}'
        "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}{% endif %}",
    )
    templates = TemplateSet(folder, TEMPLATES_DIR)
    outcome: list[BaseException] = []

    def render() -> None:
        try:
            card = CardParams("spin", "spin", "", "#000000")
            templates.render(card, width=1200, height=630, deadline=time.monotonic() + 0.3)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=render, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the template still runs past its deadline"
    assert time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], RenderTimeout)
