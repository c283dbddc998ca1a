"""`ogproxy templates --check`, and the same check wherever templates load: file:line each."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ogproxy.cli import main
from ogproxy.config import TEMPLATES_DIR
from ogproxy.templatecheck import TemplateProblems
from ogproxy.templates import TemplateSet


def folder(tmp_path: Path, **files: str) -> Path:
    where = tmp_path / "templates"
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / f"{name}.html").write_text(text)
    return where


def problems(where: Path) -> list[str]:
    with pytest.raises(TemplateProblems) as raised:
        TemplateSet(where, TEMPLATES_DIR)
    return [str(p) for p in raised.value.problems]


# A template -> the problems (file name:line: words) the check must find.
CASES = {
    "header-typo": (
        "{# ogproxy: accentColor=#059669x #}\n<h1>{{ title }}</h1>",
        ["card.html:1: header: 'accentColor': '#059669x' is not a colour"],
    ),
    "unknown-key": (
        "{# ogproxy: parms=price #}\n<h1>{{ title }}</h1>",
        ["card.html:1: header: unknown key 'parms'"],
    ),
    "bad-kind": (
        "{# ogproxy: params=logo:imag #}\n<h1>{{ title }}</h1>",
        ["card.html:1: header: params: 'logo:imag'"],
    ),
    "empty-choice": (
        "{# ogproxy: params=badge:new| #}\n<h1>{{ title }}</h1>",
        ["card.html:1: header: params: 'badge:new|'"],
    ),
    "built-in-name": (
        "{# ogproxy: params=title #}\n<h1>{{ title }}</h1>",
        ["card.html:1: header: params: 'title' is a built-in parameter"],
    ),
    "undefined-in-a-branch": (
        "{# ogproxy: params=price #}\n<h1>{{ title }}</h1>\n{% if price %}{{ sku }}{% endif %}",
        ["card.html:3: 'sku' is used but never defined"],
    ),
    "syntax": (
        "<h1>{{ title }}</h1>\n\n{% if title < %}x{% endif %}",
        ["card.html:3: syntax error"],
    ),
    "sandbox-in-a-branch": (
        '<h1>{{ title }}</h1>\n{% if title == "go" %}\n{{ cycler.__init__ }}\n{% endif %}',
        ["card.html:3: the sandbox refuses the attribute '__init__'"],
    ),
    "fails-with-a-choice": (
        "{# ogproxy: params=theme:light|dark #}\n<h1>{{ title }}</h1>\n"
        '{% if theme == "dark" %}\n{{ 1 // 0 }}\n{% endif %}',
        ["card.html:4: fails with", "theme='dark'", "ZeroDivisionError"],
    ),
    "fails-when-filled": (
        "{# ogproxy: params=count #}\n<h1>{{ title }}</h1>\n"
        "{% if count %}{{ count + 1 }}{% endif %}",
        ["card.html:3: fails with", "count='Sample'", "TypeError"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_problem_is_found_with_its_line(tmp_path: Path, case: str) -> None:
    source, expected = CASES[case]
    found = "\n".join(problems(folder(tmp_path, card=source)))
    for words in expected:
        assert words in found, found


def test_a_good_folder_passes_and_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    good = folder(
        tmp_path,
        card="{# ogproxy: accentColor=#f0f params=price,logo:image,badge:new|sale #}\n"
        "{% macro tag(x) %}<b>{{ x }}</b>{% endmacro %}\n<h1>{{ title }}</h1>"
        "{% if price %}{{ tag(price) }}{% endif %}{% if logo %}<img src='{{ logo }}'>{% endif %}"
        "{% for word in title.split() %}{% set n = loop.index %}{{ n }}{% endfor %}{{ badge }}",
    )
    assert "card" in TemplateSet(good, TEMPLATES_DIR).templates
    bad = folder(
        tmp_path / "b",
        one="{# ogproxy: parms=x #}\n<h1>{{ title }}</h1>",
        two="<h1>{{ title }}{{ nope }}</h1>",
    )
    found = problems(bad)
    assert len(found) == 2 and found[0].startswith(str(bad / "one.html") + ":1:")


def test_templates_check_and_serve_exit_2_with_file_and_line(
    tmp_path: Path, fake_chromium: list[object]
) -> None:
    where = folder(tmp_path, card="{# ogproxy: params=price #}\n{% if price %}{{ sku }}{% endif %}")
    runner = CliRunner()
    for args in (
        ["templates", "--check", "--templates-dir", str(where)],
        ["templates", "--templates-dir", str(where)],
        ["serve", "--dev", "--dev-secret-file", str(tmp_path / "s"), "--templates-dir", str(where)],
        ["sign", "--dev", "--dev-secret-file", str(tmp_path / "s"), "--templates-dir", str(where),
         "--title", "x", "--template", "card", "--param", "price=9"],
    ):  # fmt: skip
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args[0], result.output)
        assert f"{where / 'card.html'}:2: 'sku' is used but never defined" in result.output
        assert "Traceback" not in result.output and result.exception is not None
    ok = runner.invoke(main, ["templates", "--check"])
    assert ok.exit_code == 0 and "3 templates pass every check" in ok.output


def test_a_template_bug_at_request_time_is_a_422_not_a_500(tmp_path: Path) -> None:
    from ogproxy.errors import InvalidDocument
    from ogproxy.params import CardParams

    # Not reached by the samples (a title only a visitor sends): the render still answers.
    where = folder(
        tmp_path, card='<h1>{{ title }}</h1>{% if title == "boom" %}{{ 1 // 0 }}{% endif %}'
    )
    templates = TemplateSet(where, TEMPLATES_DIR)
    with pytest.raises(InvalidDocument):
        templates.render(CardParams("card", "boom", "", "#000000"), width=1200, height=630)
