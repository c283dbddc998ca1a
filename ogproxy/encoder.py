"""Image encoding outside Chromium, with libvips: PNG, JPEG or WebP from the capture.

Chromium captures fast when told to (``optimizeForSpeed``) but then writes big PNGs;
its careful encoder is slow and runs serially inside the browser. We take the fast
capture and re-encode the pixels with libvips in a worker thread (libvips releases the
GIL), which is quicker and smaller. libvips is what imgproxy is built on; pyvips-binary
ships it as a wheel, so nothing is compiled here.
"""

from __future__ import annotations

import base64
import functools

import pyvips
from markupsafe import Markup

from .formats import FORMATS

# 256-colour palette (libimagequant) at full quality with Floyd-Steinberg dithering:
# indistinguishable by eye on cards (mean channel error ~0.15). Lower Q or no dithering
# gives visible bands across gradients.
PALETTE = {"compression": 9, "palette": True, "Q": 100, "dither": 1.0}


def encode(png: bytes, fmt: str, *, palette: bool = False, quality: int = 90) -> bytes:
    """A captured PNG written as ``fmt``, with that format's options from ``FORMATS``."""
    row = FORMATS[fmt]
    image = pyvips.Image.new_from_buffer(png, "", access="sequential")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if fmt == "png":
        options = PALETTE if palette else row.options
    else:
        options = {**row.options, "Q": quality}
    return bytes(getattr(image, row.save)(keep="none", **options))


@functools.lru_cache(maxsize=256)
def linear_gradient(width: int, height: int, start: str, end: str, mirrored: bool = False) -> str:
    """A ``data:`` URI of a smooth diagonal (to bottom right) gradient PNG; ``mirrored``:
    to bottom left (for a right-to-left card).

    CSS gradients in Chromium are dithered: the noise makes PNGs ~5x larger and several
    times slower to encode. A pre-rendered image has the same colours without the noise.
    """

    def rgb(color: str) -> list[int]:
        return [int(color[i : i + 2], 16) for i in (1, 3, 5)]

    a, b = rgb(start), rgb(end)
    xy = pyvips.Image.xyz(width, height)
    # 0 at the top-left corner, 1 at the bottom-right, like CSS `linear-gradient(to
    # bottom right, start, end)` (t ~ x*H + y*W) but with a whole-pixel slope: on a wide
    # card each row is the row above shifted by a whole number of pixels, which deflate
    # finds as long matches (the card's PNG ~6% smaller and ~20% faster to encode).
    col, row = xy[0], xy[1]
    if width >= height:
        shift = round(width / height)
        t = (col + shift * row) / max(width - 1 + shift * (height - 1), 1)
    else:
        shift = round(height / width)
        t = (shift * col + row) / max(shift * (width - 1) + height - 1, 1)
    image = (t * [y - x for x, y in zip(a, b, strict=True)] + a).cast("uchar")
    if mirrored:
        image = image.fliphor()
    # Made once per colour pair (cached), then copied into every page of that shell:
    # worth compressing hard (1200x630, default colours: 14 KB in ~18 ms, once).
    png = image.pngsave_buffer(compression=9, filter="up")
    # Base64 has no character HTML escapes: Markup saves escaping ~85 KB per render.
    return Markup("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
