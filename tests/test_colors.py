"""Colour arithmetic for templates: WCAG contrast, readable ink, shades that read."""

from __future__ import annotations

import itertools

import pytest

from ogproxy.colors import DARK_INK, WHITE, contrast, contrasting, luminance, mix, readable_on

# Pale, saturated, mid and dark accents, and the two ends.
ACCENTS = [
    "#fde68a", "#a7f3d0", "#fbcfe8", "#ff5500", "#22c55e", "#06b6d4", "#facc15",
    "#808080", "#6366f1", "#2563eb", "#e11d48", "#1e1b4b", "#000000", "#ffffff",
]  # fmt: skip


def test_contrast_is_the_wcag_ratio() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#777777", "#777777") == 1
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # WCAG's example
    assert luminance("#ffffff") == 1 and luminance("#000000") == 0


def test_readable_ink_is_the_one_with_more_contrast() -> None:
    assert readable_on("#ffff00") == DARK_INK
    assert readable_on("#1e1b4b") == WHITE
    for accent in ACCENTS:
        ink = readable_on(accent)
        other = WHITE if ink == DARK_INK else DARK_INK
        assert contrast(ink, accent) >= contrast(other, accent), accent
    # Saturated mid colours read better with dark ink (the old rule gave white: 2.3:1).
    assert readable_on("#22c55e") == DARK_INK


@pytest.mark.parametrize("ratio", [3.0, 4.5, 5.5, 7.0])
def test_contrasting_moves_a_colour_away_from_the_ink_just_enough(ratio: float) -> None:
    for accent, ink in itertools.product(ACCENTS, [WHITE, DARK_INK, "#475569", "#94a3b8"]):
        shade = contrasting(accent, ink, ratio)
        reachable = max(contrast("#000000", ink), contrast("#ffffff", ink))
        assert contrast(shade, ink) >= min(ratio, reachable), (accent, ink, shade)
        if contrast(accent, ink) >= ratio:
            assert shade == accent  # already readable: left as it is
        else:  # toward black or white, and one step less would not do
            away = [[mix(accent, end, n / 50) for n in range(51)] for end in ("#000000", WHITE)]
            steps = next(s for s in away if shade in s)
            index = steps.index(shade)
            assert index == 0 or contrast(steps[index - 1], ink) < ratio


def test_mix() -> None:
    assert mix("#000000", "#ffffff", 0.5) == "#808080"
    assert mix("#2563eb", "#2563eb", 0.3) == "#2563eb"
    assert mix("#ff0000", "#0000ff", 0) == "#ff0000"
