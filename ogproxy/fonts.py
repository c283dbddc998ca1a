"""Extra fonts for the renderer, from a local folder, with no network.

Chromium finds fonts through fontconfig, so a folder of ``.woff2``/``.woff``/``.ttf``/
``.otf`` files (``OGPROXY_FONTS_DIR``) is added to the system configuration for the
browser process only: templates and custom HTML use the families by name, exactly like
Inter, Noto Color Emoji and Noto CJK, which are the defaults. Chromium reads only plain
TrueType/OpenType from the system, so WOFF and WOFF2 files are unpacked first (fontTools,
with brotli for WOFF2: the format users most often have and peers most often refuse).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

SUFFIXES = {".woff2", ".woff", ".ttf", ".otf", ".ttc"}


def font_files(directory: Path | None) -> list[Path]:
    if directory is None:
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in SUFFIXES)


def fingerprint(directory: Path | None) -> str:
    """Changes whenever a font is added, removed or replaced: part of the cache key."""
    digest = hashlib.sha256()
    for path in font_files(directory):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")  # type: ignore[arg-type]
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _unpack(source: Path, into: Path, prefix: str) -> None:
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    font = TTFont(str(source))
    font.flavor = None
    font.save(str(into / f"{prefix}-{source.stem}{'.otf' if 'CFF ' in font else '.ttf'}"))


def fontconfig_env(directory: Path | None) -> dict[str, str]:
    """Environment for Chromium that adds ``directory`` to the system's fonts.

    The files are copied into a folder anyone may read: Chromium may run as a user of its
    own (sandbox.py) that cannot reach ``directory``.
    """
    if directory is None:
        return {}
    work = Path(tempfile.mkdtemp(prefix="ogproxy-fonts-"))
    usable = work / "fonts"  # only files Chromium can read: fontconfig would offer the rest too
    usable.mkdir()
    for i, path in enumerate(font_files(directory)):
        if path.suffix.lower() in (".woff", ".woff2"):
            _unpack(path, usable, str(i))
        else:
            shutil.copyfile(path, usable / f"{i}-{path.name}")
    (work / "fonts.conf").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        "<fontconfig>\n"
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{escape(str(usable))}</dir>\n"
        f"  <cachedir>{escape(str(work / 'cache'))}</cachedir>\n"
        "</fontconfig>\n"
    )
    for made in (work, *work.iterdir(), *usable.iterdir()):  # fonts, not secrets
        made.chmod(0o755 if made.is_dir() else 0o644)  # whatever the umask
    return {"FONTCONFIG_FILE": str(work / "fonts.conf")}


def discard(env: dict[str, str]) -> None:
    """Remove what ``fontconfig_env`` made, once no browser reads it."""
    if "FONTCONFIG_FILE" in env:
        shutil.rmtree(Path(env["FONTCONFIG_FILE"]).parent, ignore_errors=True)
