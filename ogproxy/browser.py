"""Finding and launching a Chromium for Playwright.

Order: an explicit path (``OGPROXY_CHROMIUM``), else Playwright's own browser if it is
installed, else a system Chromium (Debian's ``chromium-headless-shell``, then
``chromium``). ``python -m ogproxy.browser --check`` launches it and prints what it found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from .errors import ConfigError

LAUNCH_ARGS = [
    "--no-sandbox",  # required as root; the page itself is locked down instead (no network)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",  # same glyph shapes on every machine
    # A capture otherwise waits for the next 60 Hz compositor frame (~10 ms).
    "--disable-frame-rate-limit",
    "--disable-gpu-vsync",
]

# The /usr/bin entries are shell wrappers; Playwright needs the real binaries.
SYSTEM_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/lib/chromium/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
)
SYSTEM_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

INSTALL_HELP = (
    "No Chromium found for Playwright. Install one of:\n"
    "  playwright install --only-shell chromium        (Playwright's own build)\n"
    "  sudo apt-get install chromium-headless-shell     (Debian/Ubuntu)\n"
    "or point OGPROXY_CHROMIUM at a Chromium binary. `make run` does this for you."
)


def system_chromium() -> str | None:
    for path in SYSTEM_CANDIDATES:
        if Path(path).is_file():
            return path
    for name in SYSTEM_NAMES:
        if found := shutil.which(name):
            return found
    return None


def _playwright_browsers() -> list[Path]:
    root = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(Path.home() / ".cache/ms-playwright")
    if root == "0":  # browsers inside the playwright package
        import playwright

        root = str(Path(playwright.__file__).parent / "driver/package/.local-browsers")
    return sorted(Path(root).glob("chromium*"))


def preflight(explicit: str | None) -> None:
    """Fail fast, before the server starts, when no browser can possibly be launched."""
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"OGPROXY_CHROMIUM: {explicit} does not exist.\n{INSTALL_HELP}")
    elif not _playwright_browsers() and system_chromium() is None:
        raise ConfigError(INSTALL_HELP)


async def launch(
    playwright: Playwright, explicit: str | None = None, env: dict[str, str] | None = None
) -> Browser:
    """Launch headless Chromium, or raise ConfigError saying how to install one.

    ``env`` is added to this process's environment for the browser (fontconfig, say).
    """
    preflight(explicit)
    options: dict[str, Any] = {"args": LAUNCH_ARGS}
    if env:
        options["env"] = {**os.environ, **env}
    if explicit:
        return await playwright.chromium.launch(executable_path=explicit, **options)
    try:
        return await playwright.chromium.launch(**options)
    except PlaywrightError as exc:
        if "Executable doesn't exist" not in str(exc):
            raise
    path = system_chromium()
    if path is None:
        raise ConfigError(INSTALL_HELP)
    return await playwright.chromium.launch(executable_path=path, **options)


async def _check(explicit: str | None) -> str:
    async with async_playwright() as pw:
        browser = await launch(pw, explicit)
        try:
            return f"Chromium {browser.version}"
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="launch the browser and exit")
    parser.add_argument("--chromium", default=None, help="explicit Chromium binary")
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(_check(args.chromium or os.environ.get("OGPROXY_CHROMIUM"))))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
