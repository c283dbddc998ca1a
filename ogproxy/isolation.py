"""What keeps the browser off the network and away from the server's secrets.

Every request a card's page makes goes through Playwright's interception, which aborts it
(or, for assets, hands it to the server's own fetcher). Interception alone is not enough:
the browser makes some requests itself, outside the page's fetch path (speculation-rules
prefetch and prerender reached a loopback listener, WebRTC opened TCP connections to any
host and port). So the browser process gets no network at all where the platform allows:

- ``namespace``: Chromium runs in an empty network namespace (``unshare --net``; as root,
  or as any user through an unprivileged user namespace). Its only interface is a loopback
  that is down: nothing inside can reach anything outside, whatever the browser does.
  Playwright drives it over a pipe, which needs no socket. Inside, the user stays itself
  (``--map-current-user``), not root: Chromium refuses its own sandbox as root
  (sandbox.py); util-linux before 2.38 can only map root.
- ``flags``: where namespaces are not available. Every scheme goes to a proxy that cannot
  answer (a loopback port this process holds bound and never listens on, so nothing else
  can take it), loopback included; host names resolve to nothing; WebRTC may use only
  proxied TCP, which meets the same dead proxy.

The flags are applied at both levels (defence in depth). ``auto`` picks ``namespace`` when
it works here and logs a warning when it falls back to ``flags``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from .errors import ConfigError

log = logging.getLogger("ogproxy.isolation")

NetworkIsolation = Literal["auto", "namespace", "flags"]
NETWORK_ISOLATION_CHOICES: tuple[NetworkIsolation, ...] = ("auto", "namespace", "flags")

# Ways to enter an empty network namespace, tried in order: root may create one directly,
# any other user through a user namespace of its own.
_UNSHARE = (
    ("--net",),
    ("--user", "--map-current-user", "--net"),
    ("--user", "--map-root-user", "--net"),
)

# What the browser and Playwright's driver may see of our environment: an allowlist, since
# a server's environment holds secrets under any name (DATABASE_URL, SENTRY_DSN, ...).
_ALLOWED = re.compile(
    r"^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|TZ|TMPDIR|TEMP|TMP|DISPLAY"
    r"|LD_LIBRARY_PATH|LC_\w+|XDG_\w+|FONTCONFIG_\w+|PLAYWRIGHT_\w+|PW_\w+|DEBUG)$"
)


def _allowed(name: str) -> bool:
    return bool(_ALLOWED.match(name)) and not name.startswith(("OGPROXY_", "AWS_"))


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the Playwright driver and Chromium: only the allowed names."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if _allowed(k)}


def namespace_prefix() -> tuple[str, ...] | None:
    """The ``unshare`` command that gives a process an empty network namespace, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for options in _UNSHARE:
        try:
            done = subprocess.run(
                [unshare, *options, "true"], capture_output=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return (unshare, *options, "--")
    return None


class NetworkJail:
    """The launch arguments and, at level ``namespace``, the wrapper that keeps Chromium
    off the network. Holds the dead proxy port for as long as it is open."""

    def __init__(self, wanted: NetworkIsolation) -> None:
        prefix = None if wanted == "flags" else namespace_prefix()
        if prefix is None and wanted == "namespace":
            raise ConfigError(
                "OGPROXY_NETWORK_ISOLATION=namespace: this machine cannot create a network "
                "namespace (unshare --net failed as this user); use auto or flags"
            )
        if prefix is None and wanted == "auto":
            log.warning(
                "no network namespace available for Chromium (unshare --net failed): "
                "isolation level 'flags' (interception, a dead proxy, no WebRTC UDP)"
            )
        self.level: Literal["namespace", "flags"] = "namespace" if prefix else "flags"
        self._prefix = prefix
        self._dead = socket.socket()  # bound, never listening: connections are refused
        self._dead.bind(("127.0.0.1", 0))
        self._dir: Path | None = None

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command that enters the namespace, ending in ``--``; empty at ``flags``."""
        return self._prefix or ()

    @property
    def args(self) -> list[str]:
        port = self._dead.getsockname()[1]
        return [
            f"--proxy-server=http://127.0.0.1:{port}",
            "--proxy-bypass-list=<-loopback>",  # Chromium bypasses proxies for loopback
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--no-pings",
        ]

    def executable(self, command: Sequence[str], preamble: str = "") -> str:
        """What Playwright should launch for ``command`` (a browser, perhaps behind
        sandbox.py's ``setpriv``): a wrapper that enters the namespace, runs the shell
        ``preamble`` and the command with Playwright's arguments."""
        if self._prefix is None and len(command) == 1 and not preamble:
            return command[0]
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="ogproxy-chromium-"))
        wrapper = self._dir / "chromium"
        line = shlex.join([*self.prefix, *command])
        wrapper.write_text(f'#!/bin/sh\n{preamble}exec {line} "$@"\n')
        wrapper.chmod(0o700)
        return str(wrapper)

    def close(self) -> None:
        self._dead.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


@contextlib.contextmanager
def scrubbed_environ() -> Iterator[None]:
    """Only the allowed part of our environment while a child process is being started.

    Playwright's driver copies ``os.environ`` when it starts, and Chromium inherits it.
    """
    saved = {k: os.environ.pop(k) for k in list(os.environ) if not _allowed(k)}
    try:
        yield
    finally:
        os.environ.update(saved)
