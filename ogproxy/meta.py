"""The HTML meta tags that put a signed card on a page."""

from __future__ import annotations

from html import escape

from .formats import FORMATS
from .params import Output


def meta_tags(image_url: str, output: Output | None = None, alt: str | None = None) -> str:
    """``og:image`` and ``twitter:image`` tags (with size and type) for ``image_url``."""
    out = output or Output()
    url = escape(image_url, quote=True)
    tags = [
        f'<meta property="og:image" content="{url}">',
        f'<meta property="og:image:type" content="{FORMATS[out.format].media_type}">',
        f'<meta property="og:image:width" content="{out.width}">',
        f'<meta property="og:image:height" content="{out.height}">',
    ]
    if alt:
        tags.append(f'<meta property="og:image:alt" content="{escape(alt, quote=True)}">')
    tags += [
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:image" content="{url}">',
    ]
    return "\n".join(tags)
