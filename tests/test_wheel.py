"""The released artefacts work away from the checkout: build the sdists and wheels as a
release would, install them into a fresh venv outside the repository, and run the
commands a new user runs first from an unrelated directory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest
from ogproxy_sign import sign_url
from PIL import Image

from tests.support.servers import serve

ROOT = Path(__file__).resolve().parent.parent
SECRET = "wheel-test-secret-0123456789"

pytestmark = pytest.mark.browser  # serves cards from the installed wheel


def _run(cmd: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"
    return proc  # type: ignore[no-any-return]


def _build(project: Path, dist: Path, *args: str) -> list[Path]:
    """`python -m build`: the sdist, then the wheel built from that sdist (so a file the
    sdist leaves out is missing from the wheel too). The build must not warn."""
    # The byte-compiling notice comes from PYTHONDONTWRITEBYTECODE, not from the project.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = _run([sys.executable, "-m", "build", *args, "--outdir", dist, project], env=env)
    output = proc.stdout + proc.stderr
    warnings = [line for line in output.splitlines() if "warn" in line.lower()]
    assert not warnings, "\n".join(warnings)
    return sorted(dist.glob("*"))


def _fresh_venv(path: Path) -> Path:
    # Without pip: this interpreter's pip installs into it (--python), which skips the
    # ensurepip step, the slow part of making a venv.
    venv.EnvBuilder(with_pip=False).create(path)
    return path


def _pip(env_dir: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", *args])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (outside the repo) with the ogproxy and ogproxy-sign wheels in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    assert ROOT not in tmp.parents
    dist = tmp / "dist"
    server = _build(ROOT, dist)
    signer = _build(ROOT / "clients" / "python", tmp / "dist-sign", "--wheel")
    assert {p.suffix for p in server} == {".gz", ".whl"}, server
    wheel = next(p for p in server if p.suffix == ".whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("default.html", "gradient.html", "minimal.html", "_base.html"):
        assert f"ogproxy/builtin_templates/{name}" in names
    assert "ogproxy/static/playground.html" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "templates/")) for n in names)

    env_dir = _fresh_venv(tmp / "venv")
    sign_wheel = next(p for p in signer if p.suffix == ".whl")
    _pip(env_dir, "install", "-q", "--no-compile", wheel, sign_wheel)
    return env_dir


def test_the_signer_installs_alone(tmp_path: Path) -> None:
    """`pip install ./clients/python` pulls in no server dependency and signs the vectors."""
    env_dir = _fresh_venv(tmp_path / "venv")
    python = env_dir / "bin" / "python"
    _pip(env_dir, "install", "-q", ROOT / "clients" / "python")
    frozen = _pip(env_dir, "freeze", "--all").stdout.lower()
    names = {line.split("==")[0].split(" @ ")[0] for line in frozen.splitlines()}
    assert names == {"ogproxy-sign", "itsdangerous"}, names
    script = (
        "import json, sys, ogproxy_sign as s\n"
        "for v in json.load(open(sys.argv[1]))['vectors']:\n"
        "    url = s.sign_url('https://og.example.com' + v['path'], v['secret'], v['params'])\n"
        "    assert url.endswith(v['canonical_query'] + '&sig=' + v['sig']), v['name']\n"
        "print('ok')\n"
    )
    out = _run([python, "-c", script, ROOT / "spec" / "vectors.json"], cwd=tmp_path)
    assert out.stdout.strip() == "ok"


def test_serve_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    """`ogproxy serve` from the installed wheel, started in an empty folder, serves a card."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    with serve(
        tmp_path,
        env={"OGPROXY_SECRET": SECRET},
        program=[str(installed / "bin" / "ogproxy")],
        cwd=work,
    ) as server:
        url = sign_url(server.base + "/og.png", SECRET, {"title": "From a wheel"})
        response = httpx.get(url, timeout=60)
        assert response.status_code == 200, server.output()
        assert response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as card:
            assert card.size == (1200, 630)
        index = httpx.get(server.base + "/v1/templates", timeout=10).json()["templates"]
        assert {"default", "gradient", "minimal"} <= set(index)
    assert not (ROOT / "elsewhere").exists()


def test_render_and_templates_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    ogproxy = installed / "bin" / "ogproxy"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGPROXY_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")  # render's cache, not this user's
    listed = _run([ogproxy, "templates"], cwd=tmp_path, env=env).stdout
    assert {line.split()[0] for line in listed.splitlines()} >= {"default", "gradient", "minimal"}
    _run(
        [ogproxy, "render", "--title", "Built", "--template", "gradient", "-o", "card.png"],
        cwd=tmp_path,
        env=env,
    )
    with Image.open(tmp_path / "card.png") as card:
        assert card.size == (1200, 630)
    script = (
        "import json, importlib.metadata as m; d = m.metadata('ogproxy'); "
        "print(json.dumps({k: d.get_all(k) for k in ('License-Expression', 'Classifier', "
        "'Project-URL', 'Requires-Dist')}))"
    )
    meta = json.loads(_run([installed / "bin" / "python", "-c", script], cwd=tmp_path).stdout)
    assert meta["License-Expression"] == ["MIT"]
    assert "Typing :: Typed" in meta["Classifier"]
    assert any(url.startswith("Source, https://") for url in meta["Project-URL"])
    assert any(req.startswith("ogproxy-sign") for req in meta["Requires-Dist"])
