"""A complete check of a templates folder, before it serves: every problem as ``file:line``.

What one trial render cannot see is read from the template itself: the header's grammar,
Jinja's syntax, names used but never defined or declared (in every branch, from the
syntax tree), attributes the sandbox will refuse; then sample renders fill every declared
parameter, and leave it empty, so that both sides of each ``if`` a parameter drives run.
`ogproxy templates --check`, `serve` and everything else that loads templates report the
same list (``TemplateProblems``) and never a traceback.
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import nodes

from .errors import ConfigError, InvalidParam
from .params import CORE, OUTPUT, ParamSpec, TemplateSpec, normalise_color

# What every template is given besides its declared parameters (templates.py, render).
CONTEXT = ("title", "subtitle", "accent", "width", "height", "shape", "lang", "dir")
HEADER = re.compile(r"^\{#\s*ogproxy:(?P<body>.*?)#\}")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_KINDS = ("text", "image", "a|b choice")
FALLBACK_ACCENT = "#2563eb"
# A 1x1 PNG: what an image parameter holds in a sample render.
SAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
    "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class TemplateProblems(ConfigError):
    """The templates folder has problems: each one ``file:line: what is wrong``."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
        super().__init__(f"templates: {count}:\n" + "\n".join(map(str, self.problems)))


def header(name: str, source: bytes) -> tuple[TemplateSpec, list[str]]:
    """``{# ogproxy: accentColor=#hex params=a,b:image,c:x|y #}`` on the first line: the
    template's spec, and what is wrong with the line (the spec keeps what was valid)."""
    accent, params, wrong = FALLBACK_ACCENT, list[ParamSpec](), list[str]()
    first = source.split(b"\n", 1)[0].decode("utf-8", "replace")
    match = HEADER.match(first)
    if match is None:
        if first.lstrip().startswith("{#") and "ogproxy" in first.split("#}")[0]:
            wrong.append("header: write it as {# ogproxy: accentColor=#hex params=a,b #}")
        return TemplateSpec(accent, ()), wrong
    for item in match.group("body").split():
        key, equals, value = item.partition("=")
        if not equals:
            wrong.append(f"header: {item!r} is not key=value")
        elif key == "accentColor":
            try:
                accent = normalise_color("accentColor", value)
            except InvalidParam as exc:
                wrong.append(f"header: {exc.public_message.removeprefix('Invalid parameter ')}")
        elif key == "params":
            for entry in value.split(","):
                param, problem = _param(entry)
                if problem:
                    wrong.append(f"header: params: {problem}")
                elif param and any(p.name == param.name for p in params):
                    wrong.append(f"header: params: {param.name!r} is declared twice")
                elif param:
                    params.append(param)
        else:
            wrong.append(f"header: unknown key {key!r} (one of accentColor, params)")
    return TemplateSpec(accent, tuple(params)), wrong


def _param(entry: str) -> tuple[ParamSpec | None, str | None]:
    if not entry:
        return None, "an empty entry (two commas, or one at the end)"
    name, colon, kind = entry.partition(":")
    if not _NAME.match(name):
        return None, f"{name!r} is not a name (a letter, then letters, digits or _)"
    if name in CORE or name in OUTPUT or name in CONTEXT:
        return None, f"{name!r} is a built-in parameter"
    if not colon:
        return ParamSpec(name), None
    if kind == "image":
        return ParamSpec(name, "image"), None
    choices = kind.split("|")
    if len(choices) < 2 or not all(choices):
        return None, f"{entry!r}: a kind is image or choices like a|b, none of them empty"
    if len(set(choices)) != len(choices):
        return None, f"{entry!r}: a choice is given twice"
    return ParamSpec(name, "choice", tuple(choices)), None


def check(
    env: jinja2.Environment,
    sources: Mapping[str, bytes],
    paths: Mapping[str, Path],
    specs: Mapping[str, TemplateSpec],
    header_problems: Mapping[str, list[str]],
    render: Callable[[str, dict[str, str]], object],
    versions: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem of the templates (``<name>.html``) and partials (``_*.html``).

    ``versions``: each template's version (a hash of its source and every partial)."""
    versions = versions or {}
    problems = [Problem(str(paths[f]), 1, p) for f, ps in header_problems.items() for p in ps]
    declared = {p.name for spec in specs.values() for p in spec.params}
    parsed: dict[str, nodes.Template] = {}
    for filename, source in sources.items():
        try:
            parsed[filename] = env.parse(source.decode("utf-8"), filename)
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(paths[filename]), 1, f"not UTF-8 ({exc.reason})"))
        except jinja2.TemplateSyntaxError as exc:
            line = exc.lineno or 1
            problems.append(Problem(str(paths[filename]), line, f"syntax error: {exc.message}"))
    for filename, tree in parsed.items():
        template = filename.removesuffix(".html")
        # A partial is included by any template: it may use any template's parameters.
        own = declared if filename.startswith("_") else {p.name for p in specs[template].params}
        known = set(CONTEXT) | own | set(env.globals)
        problems += [Problem(str(paths[filename]), line, m) for line, m in _static(tree, known)]
    if problems:  # sample renders only of templates that read well
        return problems
    for filename in sources:
        if not filename.startswith("_"):
            template = filename.removesuffix(".html")
            if versions.get(template) not in _SAMPLED:
                found = _samples(template, specs[template], paths, render)
                problems += found
                if not found and template in versions:
                    _SAMPLED.add(versions[template])
    return problems


# Versions (source and partials) whose sample renders passed in this process: the same
# bytes loaded again (a dev reload, each app a test starts) need not render them again.
_SAMPLED: set[str] = set()


def _static(tree: nodes.Template, known: set[str]) -> Iterable[tuple[int, str]]:
    """Names loaded but never defined, and attributes the sandbox refuses, with lines."""
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for macro in tree.find_all(nodes.Macro):
        stored |= {macro.name} | {a.name for a in macro.args}
    for imported in tree.find_all((nodes.Import, nodes.FromImport)):
        if isinstance(imported, nodes.Import):
            stored.add(imported.target)
        elif isinstance(imported, nodes.FromImport):
            stored |= {n if isinstance(n, str) else n[1] for n in imported.names}
    stored |= {"loop", "super", "self", "varargs", "kwargs", "caller"}
    reported: set[str] = set()
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in known | stored | reported:
            reported.add(name.name)
            yield name.lineno, f"{name.name!r} is used but never defined nor declared in params"
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value if isinstance(node.arg.value, str) else None
        if attr and attr.startswith("_"):
            yield node.lineno, f"the sandbox refuses the attribute {attr!r}"


def _samples(
    template: str,
    spec: TemplateSpec,
    paths: Mapping[str, Path],
    render: Callable[[str, dict[str, str]], object],
) -> list[Problem]:
    """Renders with every parameter filled and every one empty, each choice, a subtitle and
    none: both sides of each ``if`` a parameter drives. The first failure is reported."""
    filled = {p.name: SAMPLE_IMAGE if p.kind == "image" else "Sample" for p in spec.params}
    variants: list[dict[str, str]] = [
        {**filled, "subtitle": "A subtitle"},
        {p.name: p.default for p in spec.params},
    ]
    for p in spec.params:
        variants += [{**filled, p.name: choice} for choice in p.choices[1:]]
    for values in itertools.islice(variants, 32):
        try:
            render(template, values)
        except Exception as exc:  # any failure is the template's problem
            file, line = _where(exc, template, paths)
            reason = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
            shown = ", ".join(f"{k}={v[:12]!r}" for k, v in values.items()) or "defaults"
            return [Problem(file, line, f"fails with {shown}: {str(reason)[:200]}")]
    return []


def _where(exc: BaseException, template: str, paths: Mapping[str, Path]) -> tuple[str, int]:
    """The template file and line a render failed at (Jinja puts them in the traceback)."""
    cause = exc.__cause__ or exc.__context__ or exc
    for frame in reversed(traceback.extract_tb(cause.__traceback__)):
        if frame.filename in paths:
            return str(paths[frame.filename]), frame.lineno or 1
    return str(paths[f"{template}.html"]), 1
