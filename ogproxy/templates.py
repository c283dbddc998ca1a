"""Card templates: Jinja2 HTML files with autoescaping, and what identifies their source.

A template is ``<name>.html`` in the templates folder; files starting with ``_`` are
partials shared by all of them. The first line may declare defaults:
``{# ogproxy: accentColor=#6366f1 #}``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import escape

from .encoder import linear_gradient
from .params import CardParams, ParamSpec, TemplateSpec, normalise_color

# Stand-ins for the text slots: private-use characters a template never contains.
_SLOT = "\ue000og-{}\ue001"
_DEFAULTS_LINE = re.compile(r"^\{#\s*ogproxy:(?P<body>.*?)#\}")
FALLBACK_ACCENT = "#2563eb"


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def mix(color: str, other: str, amount: float) -> str:
    """``amount`` of ``other`` mixed into ``color`` (both ``#rrggbb``)."""
    a, b = _rgb(color), _rgb(other)
    return "#" + "".join(f"{round(x + (y - x) * amount):02x}" for x, y in zip(a, b, strict=True))


def luminance(color: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def readable_on(color: str) -> str:
    """Near-black or white, whichever reads better on ``color``."""
    return "#0b1020" if luminance(color) > 0.42 else "#ffffff"


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


@dataclass(frozen=True)
class Template:
    name: str
    source_hash: str  # of the template and every shared partial
    spec: TemplateSpec  # default accent colour and the template's own parameters

    @property
    def accent_color(self) -> str:
        return self.spec.accent_color


class TemplateSet:
    """The templates of one or more folders, read once at start-up.

    Folders are searched in order: a template or partial in the first one (the user's
    ``OGPROXY_TEMPLATES_DIR``) overrides one of the same name in a later one (built-ins).
    The sources are kept in memory, and rendering uses exactly the bytes that were hashed
    into each version: an edit on disk takes effect at the next start, all at once (the
    design, its version in ``/v1/templates`` and the cache keys), never half of it.
    """

    def __init__(self, *directories: Path) -> None:
        self.directories = directories
        files: dict[str, Path] = {}
        for directory in reversed(directories):  # earlier folders win
            files.update((p.name, p) for p in directory.glob("*.html"))
        sources = {name: path.read_bytes() for name, path in files.items()}
        self.env = jinja2.Environment(
            loader=jinja2.DictLoader({n: b.decode("utf-8") for n, b in sources.items()}),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["mix"] = mix
        self.env.filters["readable_on"] = readable_on
        self.env.globals["linear_gradient"] = linear_gradient
        partials = b"".join(sources[n] for n in sorted(sources) if n.startswith("_"))
        self.templates: dict[str, Template] = {}
        for filename in sorted(sources):
            if filename.startswith("_"):
                continue
            source = sources[filename]
            digest = hashlib.sha256(source + b"\0" + partials).hexdigest()
            name = filename.removesuffix(".html")
            self.templates[name] = Template(name, digest, _declared_spec(name, source))
            self.env.get_template(filename)  # fail at start-up, not on a request
        if "default" not in self.templates:
            raise ValueError(f"no default.html in {', '.join(map(str, directories))}")

    @property
    def default_accents(self) -> dict[str, str]:
        return {name: t.accent_color for name, t in self.templates.items()}

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

    def render(self, params: CardParams, *, width: int, height: int) -> Document:
        if params.html is not None:  # a custom document: rendered as given
            return Document(params.html, None, {})
        template = self.env.get_template(f"{params.template}.html")
        context: dict[str, object] = {
            "accent": params.accent_color,
            "width": width,
            "height": height,
        }
        context.update((p.name, p.default) for p in self.templates[params.template].spec.params)
        context.update(params.extra)
        texts = {"title": params.title, "subtitle": params.subtitle}
        html = template.render(**texts, **context)
        markers = {name: _SLOT.format(name) if text else "" for name, text in texts.items()}
        shell = template.render(**markers, **context)
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
            return Document(html, None, {})
        return Document(html, shell, {markers[n]: t for n, t in texts.items() if t})


def _declared_spec(name: str, source: bytes) -> TemplateSpec:
    """Read ``{# ogproxy: accentColor=#hex params=a,b:image,c:x|y #}`` from the first line."""
    accent, params = FALLBACK_ACCENT, []
    first = source.split(b"\n", 1)[0].decode("utf-8", "replace")
    if m := _DEFAULTS_LINE.match(first):
        for item in m.group("body").split():
            key, _, value = item.partition("=")
            if key == "accentColor":
                accent = normalise_color(f"{name}.html accentColor", value)
            elif key == "params":
                params = [_param(entry) for entry in value.split(",") if entry]
    return TemplateSpec(accent, tuple(params))


def _param(entry: str) -> ParamSpec:
    name, _, kind = entry.partition(":")
    if kind == "image":
        return ParamSpec(name, "image")
    if kind:
        return ParamSpec(name, "choice", tuple(kind.split("|")))
    return ParamSpec(name)
