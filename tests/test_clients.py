"""The Python, JS, Go and PHP signers in clients/ agree with spec/vectors.json.

Each runs its own test suite; a test is skipped only when its toolchain is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


def test_python_signer_matches_vectors() -> None:
    # Its own suite, as its own pytest run: it is a separate package (ogproxy-sign).
    suite = "clients/python/tests"
    _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", suite], ROOT)


def test_js_signer_matches_vectors() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    # `node --test clients/js/test/` is the same on Node 18 and 20, but Node 21+ takes
    # globs, not directories, so the files are named.
    files = sorted(str(p.relative_to(ROOT)) for p in (CLIENTS / "js" / "test").glob("*.test.js"))
    assert files
    _run(["node", "--test", *files], ROOT)


def test_go_signer_matches_vectors(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    env = {**os.environ, "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-count=1"}
    if not any(env.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp_path / "go-build")
    _run(["go", "test", "./..."], CLIENTS / "go", env)


def test_php_signer_matches_vectors() -> None:
    if shutil.which("php") is None:
        pytest.skip("php is not installed")
    _run(["php", str(CLIENTS / "php" / "test.php")], ROOT)
