"""The output formats: one row per format, the one place each of its facts is written.

Every module that names a format (the routes, the JSON API's ``format``, media types,
file suffixes of ``ogproxy render``, the encoder) reads it from ``FORMATS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Format = Literal["png", "jpeg", "webp"]


@dataclass(frozen=True)
class ImageFormat:
    name: Format
    media_type: str
    suffix: str  # of the files `ogproxy render` writes
    suffixes: tuple[str, ...]  # file names read as this format (`-o card.jpeg`)
    paths: tuple[str, ...]  # its signed-URL endpoints; the path is part of the signature
    save: str  # the libvips saver
    options: Mapping[str, object]  # what the saver is always given
    magic: tuple[tuple[int, bytes], ...]  # (offset, bytes) every file of the format has

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` starts like a file of this format (its magic bytes)."""
        return all(data[at : at + len(magic)] == magic for at, magic in self.magic)


FORMATS: dict[str, ImageFormat] = {
    row.name: row
    for row in (
        ImageFormat(
            "png",
            "image/png",
            ".png",
            (".png",),
            ("/og.png",),
            "pngsave_buffer",
            # zlib level 6 without row filters: measured on cards it is both the fastest
            # and the smallest of the lossless settings (filters help photos, not flat
            # colours and text).
            {"compression": 6, "filter": "none"},
            ((0, b"\x89PNG\r\n\x1a\n"),),
        ),
        ImageFormat(
            "jpeg",
            "image/jpeg",
            ".jpg",
            (".jpg", ".jpeg"),
            ("/og.jpeg", "/og.jpg"),
            "jpegsave_buffer",
            # 4:4:4 chroma: cards are text and flat colour, where 4:2:0 smears edges.
            {"optimize_coding": True, "subsample_mode": "off"},
            ((0, b"\xff\xd8\xff"),),
        ),
        ImageFormat(
            "webp",
            "image/webp",
            ".webp",
            (".webp",),
            ("/og.webp",),
            "webpsave_buffer",
            {"smart_subsample": True},
            ((0, b"RIFF"), (8, b"WEBP")),
        ),
    )
}
# Signed-URL endpoint -> the format it produces.
ENDPOINTS: dict[str, Format] = {path: row.name for row in FORMATS.values() for path in row.paths}


def for_file(name: str) -> ImageFormat | None:
    """The format a file name's suffix asks for, if any."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return next((row for row in FORMATS.values() if suffix in row.suffixes), None)
