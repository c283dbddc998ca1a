"""The HTML meta tags that put a signed card on a page."""

from __future__ import annotations

import ogproxy_sign

from .formats import FORMATS
from .params import Output


def meta_tags(image_url: str, output: Output | None = None, alt: str | None = None) -> str:
    """``og:image`` and ``twitter:image`` tags (with size and type) for ``image_url``."""
    out = output or Output()
    return ogproxy_sign.meta_tags(
        image_url,
        width=out.width,
        height=out.height,
        media_type=FORMATS[out.format].media_type,
        alt=alt,
    )
