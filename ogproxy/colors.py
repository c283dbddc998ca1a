"""Colour arithmetic for templates: mixing, WCAG luminance and contrast, readable ink.

The templates' filters (``mix``, ``readable_on``, ``contrasting``) are these functions.
Colours are ``#rrggbb`` strings, as the parameters are normalised.
"""

from __future__ import annotations

import functools

BLACK, WHITE = "#000000", "#ffffff"
DARK_INK = "#0b1020"  # the near-black that readable_on gives


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


def contrast(color: str, other: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    low, high = sorted((luminance(color), luminance(other)))
    return (high + 0.05) / (low + 0.05)


def readable_on(color: str) -> str:
    """Near-black or white, whichever has the higher contrast on ``color``."""
    return DARK_INK if contrast(DARK_INK, color) > contrast(WHITE, color) else WHITE


@functools.lru_cache(maxsize=1024)  # templates call it on every render with a few colours
def contrasting(color: str, ink: str, ratio: float = 4.5) -> str:
    """``color`` darkened or lightened, away from ``ink``, just enough for ``ink`` to read
    on it at ``ratio``. Toward the other end when that one cannot get there (a mid-grey ink
    on a pale colour); black or white when neither can."""
    lighter = luminance(ink) > luminance(color)
    ends = [BLACK, WHITE] if lighter else [WHITE, BLACK]
    for end in ends:
        if contrast(end, ink) >= ratio:
            steps = 50
            for step in range(steps + 1):
                shade = mix(color, end, step / steps)
                if contrast(shade, ink) >= ratio:
                    return shade
    return max(ends, key=lambda end: contrast(end, ink))
