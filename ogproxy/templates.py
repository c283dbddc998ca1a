"""Card templates: Jinja2 HTML files with autoescaping, and what identifies their source.

A template is ``<name>.html`` in the templates folder; files starting with ``_`` are
partials shared by all of them. The first line may declare defaults:
``{# ogproxy: accentColor=#6366f1 #}``.

Templates run in Jinja's sandbox, read no file outside their folders (links are resolved
and checked), render within a deadline and a size bound, and each one is rendered once at
start-up so that a broken template stops the server instead of failing every request.
Only the built-in templates are trusted to share a browser page between cards (see
renderer.py); the operator's are not, unless the operator says so.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from . import templatecheck
from .colors import contrasting, mix, readable_on
from .config import TEMPLATES_DIR
from .encoder import linear_gradient
from .errors import InvalidDocument, RenderTimeout
from .params import CardParams, TemplateSpec
from .templatecheck import Problem, TemplateProblems
from .typesetting import Shape, phrase_breaks, text_dir, text_lang

# Stand-ins for the text slots: private-use characters a template never contains.
_SLOT = "\ue000og-{}\ue001"
# The built-in font stack: templates and raw-HTML fragments both use it.
FONT_STACK = (
    '"Inter", "Noto Sans", "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans CJK SC", '
    '"Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Color Emoji", sans-serif'
)
# A raw html parameter with one of these tags is a whole document; anything else is a
# fragment, wrapped like the hosted API does.
_DOCUMENT_TAG = re.compile(r"<(?:!doctype|html|head|body)[\s>/]", re.IGNORECASE)
_FRAGMENT = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html, body {{ margin: 0; padding: 0; }}
body {{ font-family: {fonts}; -webkit-font-smoothing: antialiased; }}
</style></head><body>{html}</body></html>"""


def raw_document(html: str) -> str:
    """A raw html parameter as a page: a fragment fills the card edge to edge."""
    if _DOCUMENT_TAG.search(html):
        return html
    return _FRAGMENT.format(fonts=FONT_STACK, html=html)


MAX_DOCUMENT_CHARS = 8 * 2**20  # a rendered template larger than this is refused
DEFAULT_DEADLINE = 10.0  # seconds, when the caller gives none (start-up checks, tests)


@dataclass(frozen=True)
class Document:
    """A card's HTML, and how to get it from an already loaded page by changing text only.

    ``shell`` is the page with each non-empty text slot replaced by a marker; loading the
    shell and then setting each marker's text node to ``slots[marker]`` gives exactly
    ``html``. It is None when the template uses the text other than as plain text content.
    """

    html: str
    shell: str | None
    slots: dict[str, str]
    trusted: bool = False  # may share a browser page with other cards (renderer.py)


@dataclass(frozen=True)
class Template:
    name: str
    source_hash: str  # of the template and every shared partial
    spec: TemplateSpec  # default accent colour and the template's own parameters
    trusted: bool = False  # built in (or trusted by the operator): see renderer.py

    @property
    def accent_color(self) -> str:
        return self.spec.accent_color


class _Bounded(SandboxedEnvironment):
    """Jinja's sandbox, with calls, repetitions and loop iterations bounded by the
    render's deadline."""

    intercepted_binops = frozenset({"*", "**"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Each loop's body starts with a call (a no-op, checked like every call): a loop
        with no call and no output of its own, over a long string say, would otherwise
        run past the deadline and hold its thread long after the 504."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            tick = nodes.Call(nodes.Name(_TICK, "load"), [], [], None, None)
            loop.body.insert(0, nodes.ExprStmt(tick))
        return tree

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _Deadline.check()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _Deadline.check()
        # A power is bounded by the size of its result: a chain of small powers grows
        # without end (one took the GIL for two minutes).
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and max(1, left.bit_length()) * abs(right) > 2**16:
            raise SecurityError("power too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_DOCUMENT_CHARS:
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


_TICK = "_ogproxy_tick"  # not a name a template can write (the sandbox refuses _names)


def _tick() -> None:
    """Called at the top of every loop iteration; the sandbox's call checks the deadline."""


class _Deadline:
    """The deadline of the template render running in this thread."""

    _local = threading.local()

    @classmethod
    def set(cls, deadline: float) -> None:
        cls._local.at = deadline

    @classmethod
    def check(cls) -> None:
        if time.monotonic() > getattr(cls._local, "at", float("inf")):
            raise RenderTimeout(detail="template rendering exceeded the render timeout")


def _confined(path: Path, folders: list[Path]) -> None:
    real = path.resolve()
    if not any(real.is_relative_to(folder.resolve()) for folder in folders):
        raise ValueError(f"{path.name} is a link to a file outside {path.parent}")


class TemplateSet:
    """The templates of one or more folders, read once at start-up.

    Folders are searched in order: a template or partial in the first one (the user's
    ``OGPROXY_TEMPLATES_DIR``) overrides one of the same name in a later one (built-ins).
    A template is trusted (renderer.py) when it and every partial are built in, or when
    ``trust`` says the operator vouches for their own.

    The sources are kept in memory, and rendering uses exactly the bytes that were hashed
    into each version: an edit on disk takes effect at the next start, all at once (the
    design, its version in ``/v1/templates`` and the cache keys), never half of it. Only
    the files read here can be extended or included, so nothing outside the folders is.
    """

    def __init__(self, *directories: Path, trust: bool = False) -> None:
        files: dict[str, Path] = {}
        for directory in reversed(directories):  # earlier folders win
            for path in directory.glob("*.html"):
                _confined(path, [directory])
                files[path.name] = path
        sources = {name: path.read_bytes() for name, path in files.items()}
        texts = {n: b.decode("utf-8", "replace") for n, b in sources.items()}
        self.env = _Bounded(
            # Each template's name is its file name in tracebacks: problems give file:line.
            loader=jinja2.FunctionLoader(
                lambda n: (texts[n], n, lambda: True) if n in texts else None
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["mix"] = mix
        self.env.filters["readable_on"] = readable_on
        self.env.filters["contrasting"] = contrasting
        self.env.globals["linear_gradient"] = linear_gradient
        self.env.globals["font_stack"] = Markup(FONT_STACK)
        self.env.globals[_TICK] = _tick
        built_in = TEMPLATES_DIR.resolve()
        partials = sorted(n for n in files if n.startswith("_"))
        all_partials_built_in = all(files[n].parent.resolve() == built_in for n in partials)
        partial_bytes = b"".join(sources[n] for n in partials)
        self.templates: dict[str, Template] = {}
        header_problems: dict[str, list[str]] = {}
        for filename in sorted(sources):
            if filename.startswith("_"):
                continue
            source = sources[filename]
            digest = hashlib.sha256(source + b"\0" + partial_bytes).hexdigest()
            name = filename.removesuffix(".html")
            ours = files[filename].parent.resolve() == built_in and all_partials_built_in
            spec, header_problems[filename] = templatecheck.header(name, source)
            self.templates[name] = Template(name, digest, spec, trust or ours)
        if "default" not in self.templates:
            where = ", ".join(map(str, directories))
            raise TemplateProblems([Problem(where, 0, "no default.html")])
        # Every problem now, as file:line, rather than a request's 422 later.
        problems = templatecheck.check(
            self.env,
            sources,
            files,
            {n: t.spec for n, t in self.templates.items()},
            header_problems,
            self._sample,
            {n: t.source_hash for n, t in self.templates.items()},
        )
        if problems:
            raise TemplateProblems(problems)

    def _sample(self, name: str, values: dict[str, str]) -> Document:
        template = self.templates[name]
        subtitle = values.pop("subtitle", "")
        extra = tuple((p.name, values.get(p.name, p.default)) for p in template.spec.params)
        card = CardParams(name, "A title to try", subtitle, template.accent_color, extra)
        return self.render(card, width=1200, height=630)

    def describe(self) -> dict[str, dict[str, object]]:
        """Name -> version (changes with the template's source), accent, parameters."""
        return {
            name: {
                "version": t.source_hash[:12],
                "accentColor": t.accent_color,
                "params": [
                    {
                        "name": p.name,
                        "kind": p.kind,
                        **({"choices": list(p.choices)} if p.choices else {}),
                    }
                    for p in t.spec.params
                ],
            }
            for name, t in self.templates.items()
        }

    @property
    def specs(self) -> dict[str, TemplateSpec]:
        return {name: t.spec for name, t in self.templates.items()}

    def render(
        self, params: CardParams, *, width: int, height: int, deadline: float | None = None
    ) -> Document:
        """The card's document; InvalidDocument (422) or RenderTimeout (504) if the
        template fails, grows too large or runs past ``deadline`` (``time.monotonic()``)."""
        if params.html is not None:  # never trusted; a fragment is wrapped to fill the card
            return Document(raw_document(params.html), None, {})
        _Deadline.set(time.monotonic() + DEFAULT_DEADLINE if deadline is None else deadline)
        meta = self.templates[params.template]
        template = self.env.get_template(f"{params.template}.html")
        lang = text_lang(params.title, params.subtitle or "")
        context: dict[str, object] = {
            "accent": params.accent_color,
            "width": width,
            "height": height,
            "shape": Shape.of(width, height),
            "lang": lang,
            "dir": text_dir(params.title),
        }
        context.update((p.name, p.default) for p in meta.spec.params)
        context.update(params.extra)
        texts = {
            "title": phrase_breaks(params.title, lang),
            "subtitle": params.subtitle and phrase_breaks(params.subtitle, lang),
        }
        try:
            html = _generate(template, {**texts, **context})
            markers = {name: _SLOT.format(name) if text else "" for name, text in texts.items()}
            shell = _generate(template, {**markers, **context})
        # What a template's own expressions raise ({{ 1 // 0 }}, {{ "a" + 1 }}) too: a 422.
        except (
            jinja2.TemplateError,
            RecursionError,
            MemoryError,
            ArithmeticError,
            TypeError,
            ValueError,
            LookupError,
        ) as exc:
            raise InvalidDocument(
                "The card's template could not be rendered.", detail=_reason(exc)
            ) from None
        # The shell is usable only if putting the escaped texts in place of the markers
        # rebuilds the very same page.
        rebuilt = shell
        for name, text in texts.items():
            if text:
                if shell.count(markers[name]) != 1:
                    rebuilt = ""
                    break
                rebuilt = rebuilt.replace(markers[name], str(escape(text)))
        if rebuilt != html:
            return Document(html, None, {}, meta.trusted)
        slots = {markers[n]: t for n, t in texts.items() if t}
        return Document(html, shell, slots, meta.trusted)


def _generate(template: jinja2.Template, context: dict[str, object]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > MAX_DOCUMENT_CHARS:
            raise InvalidDocument(
                "The card's template made a document that is too large.",
                detail=f"template output over {MAX_DOCUMENT_CHARS} characters",
            )
        _Deadline.check()
        parts.append(chunk)
    return "".join(parts)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
