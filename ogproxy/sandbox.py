"""Who Chromium runs as, and whether its own sandbox is on.

A renderer exploit gets what its process can reach, so two layers keep that small, each
used where the machine allows it (``OGPROXY_BROWSER_SANDBOX=auto``):

- ``uid``: when ogproxy runs as root, Chromium runs as a user of its own
  (``OGPROXY_BROWSER_USER``, ``nobody`` by default), entered with ``setpriv`` inside the
  network namespace: no supplementary groups, no capabilities, no new privileges (a
  setuid binary gives it nothing). That user cannot open the cache directory (owner and
  group only, disktier.py) nor read the server's ``/proc/<pid>/environ`` (owner only).
  It gets a private HOME and TMPDIR of its own (Chromium's profile, its shared memory
  with ``--disable-dev-shm-usage``), and the profile folder Playwright makes is handed to
  it before Chromium starts.
- ``chromium``: Chromium's own sandbox: every renderer in user, PID and network
  namespaces of its own, under a seccomp filter, with no file system. It needs
  unprivileged user namespaces and refuses to run as root, which is one more reason for
  the ``uid`` layer. Without it Chromium needs ``--no-sandbox``.

Levels, strongest first: ``uid+chromium``, ``uid``, ``chromium``, ``none``. ``auto`` logs a
warning for a layer the machine lacks (``uid`` is only missing when running as root);
``on`` refuses to start without them; ``off`` is ``none``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigError
from .isolation import NetworkJail

log = logging.getLogger("ogproxy.sandbox")

BrowserSandbox = Literal["auto", "on", "off"]
BROWSER_SANDBOX_CHOICES: tuple[BrowserSandbox, ...] = ("auto", "on", "off")
DEFAULT_BROWSER_USER = "nobody"  # owns no files; a dedicated user is better still

# The namespaces Chromium's sandbox makes for its zygote and renderers, as unshare options
# (read from /proc/<pid>/ns of Chromium 142's processes: user, pid and net, never mnt).
CHROMIUM_NAMESPACES = ("--user", "--pid", "--net")


@dataclass(frozen=True)
class Account:
    """The user Chromium runs as."""

    name: str
    uid: int
    gid: int

    @property
    def drop(self) -> tuple[str, ...]:
        """``setpriv`` options that become this user for good (ends with ``--``)."""
        return (
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        )


def account(user: str) -> Account | None:
    """``user`` (a name, or a number with an entry in the user database), or None."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _works(command: Sequence[str]) -> bool:
    try:
        done = subprocess.run(list(command), capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Sandbox:
    """The launch arguments, environment and wrapper for one renderer's Chromiums, the
    network jail's included (the jail stays its renderer's to close).

    Holds the private home of the ``uid`` layer for as long as it is open.
    """

    def __init__(self, wanted: BrowserSandbox, user: str, jail: NetworkJail) -> None:
        self._wanted = wanted
        self._jail = jail
        self._checked: set[str] = set()  # executables the user is known to be able to run
        self.account: Account | None = None
        self.chromium = False
        self._home: Path | None = None
        if wanted == "off":
            return
        self.account = self._pick_account(user)
        self.chromium = self._chromium_works()
        if self.account is not None:
            self._home = Path(tempfile.mkdtemp(prefix="ogproxy-browser-"))
            os.chown(self._home, self.account.uid, self.account.gid)

    @property
    def level(self) -> str:
        """``uid+chromium``, ``uid``, ``chromium`` or ``none``."""
        layers = [name for name, on in (("uid", self.account), ("chromium", self.chromium)) if on]
        return "+".join(layers) or "none"

    @property
    def args(self) -> list[str]:
        """Chromium's flags: the jail's, and ``--no-sandbox`` only without its own sandbox."""
        return [*self._jail.args, *([] if self.chromium else ["--no-sandbox"])]

    @property
    def env(self) -> dict[str, str]:
        """What Chromium's environment needs on top of ours: at ``uid``, a home of its own."""
        if self._home is None or self.account is None:
            return {}
        home = str(self._home)
        return {"HOME": home, "TMPDIR": home, "XDG_CONFIG_HOME": home, "XDG_CACHE_HOME": home}

    def executable(self, browser: str) -> str:
        """What Playwright should launch for ``browser``: the jail's wrapper, which at
        ``uid`` hands Playwright's profile folder over and becomes the user."""
        if self.account is not None and browser not in self._checked:
            self._check_executable(browser)
        if self.account is None:
            return self._jail.executable([browser])
        setpriv = shutil.which("setpriv")
        assert setpriv is not None  # checked in _pick_account
        owner = f"{self.account.uid}:{self.account.gid}"
        preamble = (
            'for arg; do case "$arg" in --user-data-dir=*) '
            f'chown -R {shlex.quote(owner)} -- "${{arg#--user-data-dir=}}";; esac; done\n'
        )
        return self._jail.executable([setpriv, *self.account.drop, browser], preamble)

    def relax(self, reason: str) -> bool:
        """After a launch failed: at ``auto``, go on without Chromium's own sandbox (say so
        and answer True); otherwise False, the failure stands."""
        if self._wanted != "auto" or not self.chromium:
            return False
        log.warning("Chromium's own sandbox did not start, running without it: %s", reason)
        self.chromium = False
        return True

    def close(self) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def _missing(self, message: str) -> None:
        if self._wanted == "on":
            raise ConfigError(f"OGPROXY_BROWSER_SANDBOX=on: {message}; use auto or off")
        log.warning("browser sandbox: %s", message)

    def _pick_account(self, user: str) -> Account | None:
        if os.geteuid() != 0:
            return None  # Chromium already runs as the server's unprivileged user
        found = account(user)
        if found is None or found.uid == 0:
            self._missing(f"OGPROXY_BROWSER_USER={user!r} is not a user other than root")
        elif shutil.which("setpriv") is None:
            self._missing("no setpriv (util-linux) to run Chromium as another user than root")
        else:
            return found
        return None

    def _chromium_works(self) -> bool:
        """Whether Chromium's sandbox can make its namespaces, as the user it will run as,
        inside the network namespace."""
        if os.geteuid() == 0 and self.account is None:
            self._missing("Chromium refuses its own sandbox as root")
            return False
        if "--map-root-user" in self._jail.prefix:
            self._missing("the network namespace maps this user to root (util-linux < 2.38)")
            return False
        unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
        drop = (setpriv, *self.account.drop) if self.account and setpriv else ()
        probe = [*self._jail.prefix, *drop, str(unshare), *CHROMIUM_NAMESPACES, "--fork", "true"]
        if unshare is None or not _works(probe):
            self._missing("no user namespaces for Chromium's own sandbox (unshare --user failed)")
            return False
        return True

    def _check_executable(self, browser: str) -> None:
        assert self.account is not None
        setpriv = shutil.which("setpriv") or "setpriv"
        if _works([setpriv, *self.account.drop, "test", "-x", browser]):
            self._checked.add(browser)
            return
        name = self.account.name
        self._missing(f"{name} cannot run {browser} (OGPROXY_CHROMIUM: one it can run)")
        self.account = None  # so Chromium runs as root, and refuses its own sandbox
        self.chromium = False
        self.close()
