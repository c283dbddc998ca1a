"""The content address of a render: what must change for the image to change."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .params import CardParams, Output
    from .templates import Template

# Bump when a change to the rendering code (not the templates) changes the pixels.
RENDERER_VERSION = "1"


def cache_key(template: Template, params: CardParams, output: Output, fonts: str = "") -> str:
    """SHA-256 (hex) over the renderer version, template source, fonts, params and output."""
    document = {
        "renderer": RENDERER_VERSION,
        "template": template.source_hash,
        "fonts": fonts,
        "params": params.as_dict(),
        "output": asdict(output),
    }
    blob = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
