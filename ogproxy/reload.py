"""Dev mode's reloader: a saved template, partial or font is the next request's card.

Under ``--dev`` the template folders and the fonts folder are watched (inotify, through
watchfiles); a change loads the whole set again, with the complete check every start
runs (templatecheck.py), and swaps it in at once (``Service.swap``): the templates, their
versions and the cache keys change together, so an edit is a new card under the same
signed URL. A folder that now has problems is not swapped in: the last good set keeps
serving, and the problems are logged as ``file:line`` and shown in the playground until a
save fixes them. Production reads the templates once, at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
from watchfiles import Change, awatch

from .cards import Design
from .errors import ConfigError
from .fonts import SUFFIXES, fingerprint
from .service import Service, load_templates
from .templatecheck import TemplateProblems

log = logging.getLogger("ogproxy")
# A save's events are grouped until the folder is quiet this long (milliseconds): an
# editor's write-then-rename is one reload, and a save is served within ~0.1 s.
QUIET_MS = 50


class Reloader:
    """Watches the service's template and font folders and swaps in what was saved."""

    def __init__(self, service: Service) -> None:
        self.service = service
        settings = service.settings
        self.template_dirs = [d.resolve() for d in settings.template_dirs]
        self.fonts_dir = settings.fonts_dir.resolve() if settings.fonts_dir else None
        self.problems: list[str] = []  # of the folders on disk, while the last good set serves
        self._lock = asyncio.Lock()
        self._fonts_changed = False
        self._stop = threading.Event()  # read by the watch threads
        self._watching: asyncio.Future[list[None]] | None = None

    async def start(self) -> None:
        """Watch from now on: a save made once this returns is seen."""
        watches = [self._follow(self.template_dirs, recursive=False, fonts=False)]
        if self.fonts_dir is not None:
            watches.append(self._follow([self.fonts_dir], recursive=True, fonts=True))
        self._watching = asyncio.gather(*watches)
        # Each watcher registers its folders before its first wait: let them get there.
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop watching (within one QUIET_MS step: the watch threads see the event)."""
        self._stop.set()
        if self._watching is not None:
            await self._watching

    async def _follow(self, folders: Sequence[Path], *, recursive: bool, fonts: bool) -> None:
        try:
            async for _ in awatch(
                *folders,
                watch_filter=self._matters,
                step=QUIET_MS,
                stop_event=self._stop,
                recursive=recursive,
            ):
                await self.reload(fonts=fonts)
        except Exception:  # the server goes on with what it has; the log says why
            log.exception("dev reload: no longer watching %s", ", ".join(map(str, folders)))

    def _matters(self, change: Change, path: str) -> bool:
        """A template or partial (``*.html`` at the top of a template folder), or a font."""
        file = Path(path)
        if file.suffix == ".html" and file.parent in self.template_dirs:
            return True
        return self.fonts_dir is not None and file.suffix.lower() in SUFFIXES

    async def reload(self, fonts: bool = True) -> bool:
        """Load the templates (and with ``fonts``, the fonts) as they are now; swap them in
        if they pass every check. False when the last good set keeps serving."""
        async with self._lock:
            settings = self.service.settings
            fingerprint_now = self.service.design.fonts
            # Hashed only after a font changed (a CJK folder is 100 MB), until it took.
            self._fonts_changed |= fonts
            try:
                templates = await anyio.to_thread.run_sync(load_templates, settings)
                if self._fonts_changed:
                    fingerprint_now = await anyio.to_thread.run_sync(
                        fingerprint, settings.fonts_dir
                    )
            except TemplateProblems as exc:
                return self._keep([str(p) for p in exc.problems])
            except (ConfigError, OSError) as exc:  # a file gone between listing and reading
                return self._keep([str(exc)])
            if fingerprint_now != self.service.design.fonts:
                try:
                    await self.service.renderer.reload_fonts()
                except Exception as exc:  # a font half copied, say: the next save retries
                    return self._keep([f"fonts: {type(exc).__name__}: {exc}"])
            self.service.swap(Design(templates, fingerprint_now))
            self._fonts_changed = False
            self.problems = []
            versions = ", ".join(f"{n} {v['version']}" for n, v in templates.describe().items())
            log.info("dev reload: serving %s", versions)
            return True

    def _keep(self, problems: list[str]) -> bool:
        self.problems = problems
        for problem in problems:
            log.warning("dev reload: %s (still serving the last good templates)", problem)
        return False
