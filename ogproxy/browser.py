"""Finding and launching a Chromium for Playwright, and keeping it running.

Order: an explicit path (``OGPROXY_CHROMIUM``), else Playwright's own browser if it is
installed, else a system Chromium (Debian's ``chromium-headless-shell``, then
``chromium``). ``python -m ogproxy.browser --check`` launches it and prints what it found.
Every launch gets an environment without secrets and, given a ``Sandbox``, no network
(isolation.py) and a user and sandbox of its own where the machine allows (sandbox.py).
Playwright's driver runs in a session of its own (``start_driver``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from . import procfs
from .errors import ConfigError
from .isolation import child_env, scrubbed_environ
from .params import Output
from .priority import lower_children
from .sandbox import Sandbox

log = logging.getLogger("ogproxy.browser")

JS_HEAP_MIB = 256
# Each renderer process's data size (RLIMIT_DATA): what the JS heap cap does not cover,
# typed arrays and the DOM, stops here. A 4800x3400 (scale 2) card renders within it;
# without it a DOM bomb grew Chromium by ~1.7 GB in the 10 s before its 504.
RENDERER_DATA_BYTES = 2**30

# Not here: --no-sandbox, which sandbox.py adds only where Chromium's own sandbox cannot run.
LAUNCH_ARGS = [
    "--disable-gpu",
    # No WebGL: work a card queues on the GPU process (shared by every context) outlived
    # its card and held later cards past their timeout. Cards are HTML and CSS.
    "--disable-3d-apis",
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
    # Frames at 60 Hz, not unlimited: --disable-frame-rate-limit made a capture ~one frame
    # sooner but had the compositor spin frames around each card: ~10 ms more CPU per card
    # (~18%) and ~8% fewer misses/s through the server on two cores (bench/README.md).
    "--disable-gpu-vsync",
    # A reused page re-rasterised only the changed part of its tiles over the last card:
    # where a title crossed a shape, edge pixels came out a few levels apart depending on
    # the card before, so one card had different bytes on two instances. Whole tiles are
    # rasterised again instead (tests/test_takeover.py; cost in bench/README).
    "--disable-partial-raster",
    # No popups: a card that called window.open() 300 times had each popup's navigation
    # routed and held its render to the timeout; a policy cannot stop window.open().
    "--block-new-web-contents",
    # A memory ceiling per page: a script that allocates without end makes V8 kill its
    # renderer at this heap size (MiB) instead of growing by GBs until the render timeout.
    # Cards need a few MiB; shells with big inlined images stay far below it.
    f"--js-flags=--max-old-space-size={JS_HEAP_MIB}",
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


def executable_for(playwright: Playwright, explicit: str | None = None) -> str:
    """The Chromium binary to run, or ConfigError saying how to install one."""
    preflight(explicit)
    if explicit:
        return explicit
    own = playwright.chromium.executable_path
    if own and Path(own).is_file():
        return own
    path = system_chromium()
    if path is None:
        raise ConfigError(INSTALL_HELP)
    return path


@contextlib.contextmanager
def _own_session() -> Iterator[None]:
    """Child processes started through asyncio meanwhile get a session of their own.

    Playwright starts its driver with ``asyncio.create_subprocess_exec`` and offers no
    option for it; nothing else starts a process while the driver starts (start-up).
    """
    spawn = asyncio.create_subprocess_exec

    async def detached(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        return await spawn(*args, **kwargs, start_new_session=True)

    asyncio.create_subprocess_exec = detached
    try:
        yield
    finally:
        asyncio.create_subprocess_exec = spawn


async def start_driver() -> Playwright:
    """Playwright's driver (Node), without our secrets and out of our process group.

    Ctrl-C in a terminal signals its whole foreground process group: the driver died of
    it while the server was still closing its browsers, and Playwright logged "Future
    exception was never retrieved ... Connection closed while reading from the driver".
    In a session of its own only the server gets the signal, and it closes the browsers
    and then the driver. (Playwright starts each Chromium in a session of its own too.)
    The driver still ends with the server, however that ends: its stdin pipe closes.
    """
    with scrubbed_environ(), _own_session():  # the driver copies our environment
        return await async_playwright().start()


async def launch(
    playwright: Playwright,
    explicit: str | None = None,
    env: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> Browser:
    """Launch headless Chromium, or raise ConfigError saying how to install one.

    Its environment is ours without secrets, plus ``env`` (fontconfig, say). Without a
    ``sandbox`` it runs as we do, with ``--no-sandbox``.
    """
    executable = executable_for(playwright, explicit)
    try:
        browser = await _launch(playwright, executable, env, sandbox)
    except PlaywrightError as exc:
        # Chromium's sandbox can fail where the probe passed (an LSM that lets a user
        # namespace be made but takes its capabilities away); at auto it goes without.
        if sandbox is None or not sandbox.relax(str(exc).splitlines()[0]):
            raise
        browser = await _launch(playwright, executable, env, sandbox)
    await _cap_renderer_memory()
    return browser


async def _launch(
    playwright: Playwright, executable: str, env: dict[str, str] | None, sandbox: Sandbox | None
) -> Browser:
    return await playwright.chromium.launch(
        executable_path=sandbox.executable(executable) if sandbox else executable,
        args=LAUNCH_ARGS + (sandbox.args if sandbox else ["--no-sandbox"]),
        env={**child_env(), **(env or {}), **(sandbox.env if sandbox else {})},
        # Else Playwright adds --no-sandbox itself.
        chromium_sandbox=sandbox.chromium if sandbox else False,
    )


# Closing a context whose page is stuck in a script: Chromium ends its renderer process,
# which takes a moment; past this the browser is treated as broken and relaunched.
CLOSE_TIMEOUT = 5.0


async def _abort(route: Route) -> None:
    await route.abort("blockedbyclient")


class Chromium:
    """One browser process; relaunched when it has died.

    It has one long-lived context for the trusted pool (built-in templates), and makes a
    fresh context for every untrusted card, closed with it.
    """

    def __init__(
        self,
        playwright: Playwright,
        executable: str | None,
        env: dict[str, str] | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self._pw = playwright
        self._executable = executable
        self._env = env
        self._sandbox = sandbox
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped at every launch; tabs of an older one are stale
        self.launches = 0
        # The next untrusted card's context, made while the last one rendered.
        self._spare: _Spare | None = None

    @property
    def alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def context(self) -> BrowserContext:
        """The pool's context, launching the browser first if it is not running."""
        async with self._lock:
            if not self.alive or self._context is None:
                await self._close()
                self._browser = await launch(self._pw, self._executable, self._env, self._sandbox)
                self._context = await self._new_context(Output())
                lower_children()
                self.generation += 1
                self.launches += 1
            return self._context

    async def relaunch(self, env: dict[str, str]) -> None:
        """Close the browser: its next use launches it again, with ``env``."""
        async with self._lock:
            self._env = env
            await self._close()

    async def responsive(self) -> bool:
        """Whether the browser still answers: right after it was killed, Playwright may not
        have seen its pipe close yet, so ``alive`` alone cannot tell."""
        if not self.alive or self._browser is None:
            return False
        try:
            with anyio.fail_after(2):
                probe = await self._browser.new_context()
                await probe.close()
        except (PlaywrightError, TimeoutError):
            return False
        return True

    async def isolated(self, output: Output) -> Fresh:
        """A context of its own for one card, never used before, with its page: a new
        realm, and a renderer process that ends when the context is closed.

        One is kept ready (``_Spare``): made off the critical path while the previous card
        renders, it is handed to exactly one card and a new one is started at once, so an
        untrusted card pays only its own load and capture. A spare of another size, or of a
        browser that has since been relaunched, is closed unused.
        """
        await self.context()
        key = (output.width, output.height, output.scale)
        spare, self._spare = self._spare, None
        self._spare = _Spare(key, self.generation, asyncio.ensure_future(self._fresh(output)))
        if spare is not None:
            if spare.key == key and spare.generation == self.generation:
                with contextlib.suppress(PlaywrightError):
                    ready = await spare.made
                    if ready.usable():  # a renderer that died while it waited is not
                        return ready
            _background(spare.close())
        return await self._fresh(output)

    async def _fresh(self, output: Output) -> Fresh:
        context = await self._new_context(output)
        try:
            page = await context.new_page()
            fresh = Fresh(context, page, await context.new_cdp_session(page), self.generation)
            page.on("crash", lambda _: setattr(fresh, "crashed", True))
            return fresh
        except BaseException:
            with contextlib.suppress(PlaywrightError):
                await context.close()
            raise

    async def _new_context(self, output: Output) -> BrowserContext:
        assert self._browser is not None
        context = await self._browser.new_context(
            viewport={"width": output.width, "height": output.height},
            device_scale_factor=output.scale,
            offline=True,
            service_workers="block",
            accept_downloads=False,
        )
        await context.route("**/*", _abort)
        return context

    async def retire(self, fresh: Fresh) -> None:
        """Close a card's context, even from a cancelled render. One that does not close
        (a browser stuck in a script) takes its browser with it, relaunched at its next
        use, unless that browser was relaunched meanwhile. (Closing in the background
        after the answer saved ~10 ms but freed the card's slot before its renderer
        ended: closes could pile up past the pool, and one card could trigger more.)"""
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(CLOSE_TIMEOUT) as scope,
            contextlib.suppress(PlaywrightError),
        ):
            await fresh.context.close()
        if scope.cancelled_caught and fresh.generation == self.generation:
            log.warning("an untrusted card's context did not close; relaunching that browser")
            await self.close()

    async def _close(self) -> None:
        if self._spare is not None:
            spare, self._spare = self._spare, None
            await spare.close()
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
        self._browser = self._context = None

    async def close(self) -> None:
        async with self._lock:
            await self._close()


@dataclass(eq=False)
class Fresh:
    """A card's own context, its page and the page's DevTools session."""

    context: BrowserContext
    page: Page
    cdp: CDPSession
    generation: int  # of the browser it was made in
    crashed: bool = False  # its renderer died (killed, out of memory) before any card

    def usable(self) -> bool:
        return not self.crashed and not self.page.is_closed()


@dataclass(frozen=True)
class _Spare:
    key: tuple[int, int, int]  # the output it was made for: width, height, scale
    generation: int  # of the browser it was made in
    made: asyncio.Future[Fresh]

    async def close(self) -> None:
        """Close it unused, once it is made (cancelling the making could leave a context
        open in the browser, that nothing would close)."""
        with contextlib.suppress(Exception):
            with anyio.fail_after(5):  # a hung browser is closed as a whole anyway
                fresh = await self.made
                await fresh.context.close()


_KEEP: set[asyncio.Task[None]] = set()  # strong references to background closes


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _KEEP.add(task)
    task.add_done_callback(_KEEP.discard)


def _type(pid: int) -> str | None:
    """Chromium's ``--type=`` of a process: "" for a browser, None if not Chromium."""
    args = procfs.args(pid)
    if not args or not any(n in args[0] for n in ("chrom", "headless_shell")):
        return None
    return next((a[7:] for a in args if a.startswith("--type=")), "")


def cap_renderer_memory() -> bool:
    """Give every Chromium renderer below this process a data-size limit (RLIMIT_DATA).

    Set on the zygotes, which fork the renderers (each new one inherits it), and on
    renderers already running. Over the limit, allocations fail: a script gets a
    RangeError or its renderer dies, and the render ends, not after GBs. False while a
    browser below us has not started its zygotes yet: in Chromium's own sandbox the
    zygote it starts stays the init of its PID namespace and forks the one that forks
    the renderers.
    """
    tree, todo, ready = procfs.tree(), [os.getpid()], True
    while todo:
        kids = tree.get(todo.pop(), [])
        todo += kids
        for pid in kids:
            kind = _type(pid)
            if kind in ("zygote", "renderer"):
                _limit_data(pid)
            waits = kind == "" or (kind == "zygote" and _sandboxed_zygote(pid))
            if waits and not any(_type(k) == "zygote" for k in tree.get(pid, [])):
                ready = False
    return ready


def _sandboxed_zygote(pid: int) -> bool:
    """The browser's sandboxed zygote (not its unsandboxed one, nor the one it forks)."""
    info = procfs.stat(pid)
    if info is None or _type(info.ppid) == "zygote":
        return False
    return not {"--no-sandbox", "--no-zygote-sandbox"} & set(procfs.args(pid))


def _limit_data(pid: int) -> None:
    limit = (RENDERER_DATA_BYTES, RENDERER_DATA_BYTES)
    try:
        resource.prlimit(pid, resource.RLIMIT_DATA, limit)
    except PermissionError:
        # Chromium runs as a user of its own (sandbox.py) and we lack CAP_SYS_RESOURCE
        # (containers drop it): a process of that user may set the limit instead.
        ids, prlimit = procfs.owner(pid), shutil.which("prlimit")
        if ids is not None and prlimit is not None and ids[0] != os.getuid():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [prlimit, f"--pid={pid}", f"--data={limit[0]}:{limit[1]}"],
                    user=ids[0],
                    group=ids[1],
                    extra_groups=[],
                    capture_output=True,
                    timeout=5,
                    check=False,
                )
    except OSError:
        pass  # gone


async def _cap_renderer_memory() -> None:
    # A browser may accept connections a moment before it has forked its zygote.
    if hasattr(resource, "prlimit") and procfs.available():
        for _ in range(100):
            if cap_renderer_memory():
                return
            await asyncio.sleep(0.02)
        log.warning("Chromium started no zygote within 2 s: renderers have no memory limit")


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
