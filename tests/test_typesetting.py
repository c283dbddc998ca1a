"""What a card's text and size tell its template: language, direction, phrases, shape."""

from __future__ import annotations

import pytest

from ogproxy.typesetting import PHRASE_BREAK, Shape, phrase_breaks, text_dir, text_lang


def test_the_text_picks_the_language() -> None:
    assert text_lang("Hello") == "en"
    assert text_lang("東京で会いましょう") == "ja"
    assert text_lang("東京") == "zh"  # no kana: Han only
    assert text_lang("Title", "한국어 부제") == "ko"


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("Hello", "ltr"),
        ("مرحبا بالعالم", "rtl"),
        ("שלום עולם", "rtl"),
        ("2024: مرحبا", "rtl"),  # digits and punctuation are weak: the first letter decides
        ("«Hello» مرحبا", "ltr"),
        ("🚀 שלום", "rtl"),
        ("123", "ltr"),
        ("東京", "ltr"),
    ],
)
def test_the_title_gives_the_direction(text: str, direction: str) -> None:
    assert text_dir(text) == direction


def phrases(text: str) -> list[str]:
    return phrase_breaks(text, "zh").split(PHRASE_BREAK)


def test_chinese_breaks_between_phrases_only() -> None:
    assert phrases("我们如何在三天内搭建一个自托管的图片服务") == [
        "我们", "如何", "在三天", "内搭建", "一个", "自托管", "的", "图片", "服务",
    ]  # fmt: skip
    # Traditional characters too, from the same two models.
    assert any("搭建" in p for p in phrases("我們如何在三天內搭建一個自託管的圖片服務"))


@pytest.mark.parametrize(
    "text",
    ["如何用Python构建高性能的网络服务器", "为什么我们放弃了微服务架构", "北京 今年冬天的第一场雪"],
)
def test_phrase_breaks_keep_the_text_and_never_split_latin_words_or_stand_at_spaces(
    text: str,
) -> None:
    broken = phrase_breaks(text, "zh")
    assert broken.replace(PHRASE_BREAK, "") == text
    for i, char in enumerate(broken):
        if char == PHRASE_BREAK:
            before, after = broken[i - 1], broken[i + 1]
            assert not (before.isascii() and after.isascii()), broken
            assert not before.isspace() and not after.isspace()
    assert "Python" in broken or "Python" not in text


def test_only_chinese_gets_phrase_breaks() -> None:
    for text, lang in [("東京で会いましょう", "ja"), ("한국어 부제", "ko"), ("Hello world", "en")]:
        assert phrase_breaks(text, lang) == text
    assert phrase_breaks("Hello world", "zh") == "Hello world"  # a Latin subtitle on a zh card


def test_shape_is_one_at_the_design_size_and_scales_with_the_card() -> None:
    assert Shape.of(1200, 630) == Shape(1.0, 1.0, 1.0)
    assert Shape.of(2400, 1260) == Shape(2.0, 2.0, 2.0)  # the same card, twice as large
    wide, square, portrait = Shape.of(1200, 600), Shape.of(1080, 1080), Shape.of(1000, 1500)
    # Flatter than the design: smaller margins, leaving the title the height there is.
    assert wide.unit < 1200 / 630 * 600 / 1200 and wide.text < 1 < wide.title / wide.text
    # Taller cards: lengths by the narrow side, the title larger than by area alone.
    assert square.unit == 0.9 and square.title > square.text > 1
    assert portrait.title > square.title
