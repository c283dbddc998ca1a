"""Who Chromium runs as, and whether its own sandbox is on (sandbox.py).

The fast tests launch the wrapper with a stand-in browser, a shell script that reports
what it is and what it can read; the browser tests look at Chromium's own processes.
Either way the folders involved sit in a folder anyone may enter, so that only the modes
under test keep the browser's user out.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError

from ogproxy import procfs
from ogproxy.browser import system_chromium
from ogproxy.errors import ConfigError
from ogproxy.integrity import CardSeal
from ogproxy.isolation import NetworkJail, child_env
from ogproxy.sandbox import Sandbox
from ogproxy.store import Store
from tests.support.cards import SECRET, make_settings, running, signed
from tests.support.processes import chromium, python_as

NOBODY = pwd.getpwnam("nobody")
AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="Chromium gets a user of its own only when ogproxy runs as root (with setpriv)",
)

# Reports, one name=value a line, what the process that runs it is and can read.
STAND_IN = """#!/bin/sh
for arg; do case "$arg" in --user-data-dir=*) profile="${arg#--user-data-dir=}";; esac; done
can() { cat "$1" >/dev/null 2>&1 && echo read || echo denied; }
echo "uid=$(id -u)"
echo "groups=$(id -G)"
echo "home=$HOME"
echo "profile_owner=$(stat -c %u "$profile")"
echo "profile=$(touch "$profile/Preferences" 2>/dev/null && echo written || echo denied)"
echo "cache=$(can "$CACHE/entry")"
echo "public=$(can "$OPEN/public")"
echo "server_environ=$(can /proc/$SERVER/environ)"
echo "own_environ=$(can /proc/self/environ)"
echo "args=$*"
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder anyone may enter, with a file anyone may read (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="ogproxy-sandbox-test-"))
    folder.chmod(0o755)
    (folder / "public").write_text("anyone may read this")
    (folder / "public").chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def jail() -> Iterator[NetworkJail]:
    made = NetworkJail("auto")
    yield made
    made.close()


def stand_in(folder: Path, mode: int = 0o755) -> str:
    folder.mkdir(exist_ok=True)
    folder.chmod(mode)
    script = folder / "chromium"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return str(script)


def launch(box: Sandbox, browser: str, open_dir: Path) -> dict[str, str]:
    """Run ``browser`` the way Playwright runs Chromium: through the wrapper, with a
    profile folder we made (0700, ours), and the browser's environment."""
    cache = Store(open_dir / "cache", size_limit=1 << 20, memory_bytes=0, seal=CardSeal([SECRET]))
    cache.close()
    (open_dir / "cache" / "entry").write_text("a card")
    profile = tempfile.mkdtemp(prefix="playwright_chromiumdev_profile-")
    env = {
        **child_env(),
        **box.env,
        "CACHE": str(open_dir / "cache"),
        "OPEN": str(open_dir),
        "SERVER": str(os.getpid()),
    }
    try:
        done = subprocess.run(
            [box.executable(browser), *box.args, f"--user-data-dir={profile}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


@AS_ROOT
def test_as_root_the_browser_runs_as_its_user_and_reads_none_of_ours(
    open_dir: Path, jail: NetworkJail
) -> None:
    box = Sandbox("on", "nobody", jail)
    try:
        assert box.level == "uid+chromium"  # this machine allows user namespaces
        seen = launch(box, stand_in(open_dir / "bin"), open_dir)
        home = box.env["HOME"]
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        assert os.stat(home).st_uid == NOBODY.pw_uid
    finally:
        box.close()
    assert not Path(home).exists()
    assert seen["uid"] == str(NOBODY.pw_uid)
    assert seen["groups"] == str(NOBODY.pw_gid)  # none of ours
    assert seen["home"] == home
    # Playwright's profile folder (ours, 0700) was handed over before the browser started.
    assert seen["profile_owner"] == str(NOBODY.pw_uid) and seen["profile"] == "written"
    assert seen["cache"] == "denied" and seen["server_environ"] == "denied"
    assert seen["public"] == "read" and seen["own_environ"] == "read"  # it can read at all
    assert "--no-sandbox" not in seen["args"]


def test_off_runs_the_browser_as_we_run_without_its_sandbox(
    open_dir: Path, jail: NetworkJail
) -> None:
    box = Sandbox("off", "nobody", jail)
    assert box.level == "none" and box.env == {}
    seen = launch(box, stand_in(open_dir / "bin"), open_dir)
    assert seen["uid"] == str(os.geteuid())
    assert seen["args"].split()[-2] == "--no-sandbox"


@AS_ROOT
def test_a_user_that_does_not_exist(jail: NetworkJail, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ogproxy.sandbox")
    box = Sandbox("auto", "no-such-user-here", jail)
    # As root without a user of its own, Chromium refuses its own sandbox too.
    assert box.level == "none" and "--no-sandbox" in box.args
    assert "'no-such-user-here' is not a user" in caplog.text
    with pytest.raises(ConfigError, match=r"OGPROXY_BROWSER_SANDBOX=on.*no-such-user-here"):
        Sandbox("on", "no-such-user-here", jail)


@AS_ROOT
def test_without_user_namespaces_only_the_user_is_left(
    jail: NetworkJail, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogproxy.sandbox")
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n: None if n == "unshare" else which(n))
    box = Sandbox("auto", "nobody", jail)
    assert box.level == "uid" and "--no-sandbox" in box.args
    assert "no user namespaces" in caplog.text
    box.close()
    with pytest.raises(ConfigError, match="no user namespaces"):
        Sandbox("on", "nobody", jail)


@AS_ROOT
def test_a_browser_its_user_cannot_run_stays_ours(open_dir: Path, jail: NetworkJail) -> None:
    hidden = stand_in(open_dir / "private", mode=0o700)  # like /root/.cache/ms-playwright
    box = Sandbox("auto", "nobody", jail)
    assert box.level == "uid+chromium"
    seen = launch(box, hidden, open_dir)
    assert box.level == "none" and seen["uid"] == "0" and "--no-sandbox" in seen["args"]
    strict = Sandbox("on", "nobody", jail)
    with pytest.raises(ConfigError, match="nobody cannot run"):
        strict.executable(hidden)
    strict.close()


def test_root_is_refused_as_the_browser_user() -> None:
    with pytest.raises(ConfigError, match="OGPROXY_BROWSER_USER"):
        make_settings(Path("cache"), browser_user="root")


# --- real Chromium ------------------------------------------------------------------


def status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status``, plus Chromium's process ``type`` and the ``userns``."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    info = {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}
    kind = [a[7:] for a in procfs.args(pid) if a.startswith("--type=")]
    return {
        **info,
        "type": kind[0] if kind else "browser",
        "userns": os.readlink(f"/proc/{pid}/ns/user"),
    }


def can_read_as(uid: int, gid: int, path: Path) -> bool:
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    done = subprocess.run([*drop, "cat", str(path)], capture_output=True, timeout=10)
    return done.returncode == 0


@AS_ROOT
@pytest.mark.browser
@pytest.mark.anyio
async def test_chromium_runs_as_its_user_and_cannot_read_the_cache_or_our_environment(
    open_dir: Path,
) -> None:
    async with running(make_settings(open_dir / "cache")) as (_, client):
        assert (await client.get(signed({"title": "Sandboxed"}))).status_code == 200
        assert (await client.get("/readyz")).json()["browser_sandbox"] == "uid+chromium"
        processes = {pid: status(pid) for pid in chromium(os.getpid())}
        entries = [p for p in (open_dir / "cache").rglob("*") if p.is_file()]
    renderers = [pid for pid, info in processes.items() if info["type"] == "renderer"]
    assert renderers, "no renderer found"
    ours = os.readlink("/proc/self/ns/user")
    for info in processes.values():
        assert set(info["Uid"].split()) == {str(NOBODY.pw_uid)}, info["type"]
        assert set(info["Gid"].split()) == {str(NOBODY.pw_gid)}, info["type"]
        assert info["NoNewPrivs"] == "1"
        if info["userns"] == ours:  # no power in our namespace (its own are its own)
            assert int(info["CapEff"], 16) == int(info["CapBnd"], 16) == 0, info["type"]
    for pid in renderers:  # Chromium's own sandbox: a seccomp filter and a user namespace
        assert processes[pid]["Seccomp"] == "2"
        assert processes[pid]["userns"] != ours
    # What that user may read: not the cache (its entries included), not our environment.
    assert entries, "nothing was cached"
    uid, gid = NOBODY.pw_uid, NOBODY.pw_gid
    assert can_read_as(uid, gid, open_dir / "public")  # it can read what anyone may
    assert not can_read_as(uid, gid, entries[0])
    assert not can_read_as(uid, gid, Path(f"/proc/{os.getpid()}/environ"))


REFUSES_ITS_SANDBOX = """#!/bin/sh
case " $* " in *" --no-sandbox "*) exec {chromium} "$@";; esac
echo "FATAL: No usable sandbox!" >&2
exit 1
"""


@AS_ROOT
@pytest.mark.browser
@pytest.mark.anyio
async def test_auto_goes_on_without_chromiums_sandbox_where_it_does_not_start(
    open_dir: Path,
) -> None:
    """As under an LSM that lets a user namespace be made but takes its powers away: the
    probe passes, Chromium's sandbox does not start."""
    real = system_chromium()
    if real is None:
        pytest.skip("needs a system Chromium its user can run")
    refusing = open_dir / "chromium"
    refusing.write_text(REFUSES_ITS_SANDBOX.format(chromium=real))
    refusing.chmod(0o755)
    settings = make_settings(open_dir / "cache", chromium=str(refusing))
    async with running(settings) as (service, client):
        assert (await client.get(signed({"title": "Still drawn"}))).status_code == 200
        assert service.renderer.browser_sandbox == "uid"
        browsers = [pid for pid in chromium(os.getpid()) if "--type=" not in procfs.cmdline(pid)]
        assert browsers and all("--no-sandbox" in procfs.args(pid) for pid in browsers)
        assert all(status(pid)["Uid"].split()[0] == str(NOBODY.pw_uid) for pid in browsers)
    strict = make_settings(open_dir / "strict", chromium=str(refusing), browser_sandbox="on")
    with pytest.raises(PlaywrightError, match="No usable sandbox"):
        async with running(strict):
            pass


# Started as an unprivileged user: Chromium cannot get a user of its own, but gets its own
# sandbox inside the network namespace (isolation.py maps the user to itself, not root).
AS_A_USER = """
import asyncio, json, os
from ogproxy.config import TEMPLATES_DIR
from ogproxy.params import CardParams, Output
from ogproxy.renderer import ChromiumRenderer
from ogproxy.templates import TemplateSet
from tests.support.processes import chromium

async def main():
    renderer = ChromiumRenderer(pages=1, chromium=None, timeout=10, browser_sandbox="on")
    await renderer.start()
    try:
        doc = TemplateSet(TEMPLATES_DIR).render(
            CardParams("default", "As a user", "", "#2563eb"), width=1200, height=630)
        await renderer.render(doc, Output())
        seen = []
        for pid in chromium(os.getpid()):
            text = open(f"/proc/{pid}/status").read()
            info = dict(line.split(":", 1) for line in text.splitlines())
            args = open(f"/proc/{pid}/cmdline").read()
            seen.append({"renderer": "--type=renderer" in args, "uid": info["Uid"].split()[0],
                         "seccomp": info["Seccomp"].strip(),
                         "userns": os.readlink(f"/proc/{pid}/ns/user")})
        print(json.dumps({"level": renderer.browser_sandbox,
                          "network": renderer.network_isolation,
                          "userns": os.readlink("/proc/self/ns/user"), "processes": seen}))
    finally:
        await renderer.stop()

asyncio.run(main())
"""


@AS_ROOT
@pytest.mark.browser
def test_as_a_user_chromium_runs_in_its_own_sandbox(open_dir: Path) -> None:
    home = open_dir / "home"
    home.mkdir()
    os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    drop = ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups"]
    python = python_as(drop, env)
    if python is None:
        pytest.skip("no Python here that an unprivileged user can run with this checkout")
    done = subprocess.run(
        [*python, "-c", AS_A_USER], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["level"] == "chromium" and seen["network"] == "namespace"
    renderers = [p for p in seen["processes"] if p["renderer"]]
    assert renderers and all(p["uid"] == str(NOBODY.pw_uid) for p in seen["processes"])
    for renderer in renderers:
        assert renderer["seccomp"] == "2" and renderer["userns"] != seen["userns"]
