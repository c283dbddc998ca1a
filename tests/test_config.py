from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ogproxy.config import Settings, browsers_for, declarations, dev_secret, parse_size
from ogproxy.errors import ConfigError


def test_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OGPROXY_SECRET is missing"):
        Settings(cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="OGPROXY_SECRET is missing"):
        Settings.from_env({"OGPROXY_CACHE_DIR": str(tmp_path)})


def test_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        Settings(secrets=("short",))


def test_secrets_from_env_rotate_and_are_hidden() -> None:
    settings = Settings.from_env(
        {"OGPROXY_SECRET": " old-secret-0123456789 , new-secret-0123456789 "}
    )
    assert settings.signing_secrets == ("old-secret-0123456789", "new-secret-0123456789")
    assert "secret-0123" not in repr(settings)


def test_dev_mode_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    file = tmp_path / "state" / "dev-secret"
    settings = Settings(dev=True, dev_secret_file=file)
    first = settings.signing_secrets
    assert file.stat().st_mode & 0o777 == 0o600
    assert Settings(dev=True, dev_secret_file=file).signing_secrets == first
    assert dev_secret(file) == first[0] and len(first[0]) >= 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_dev_secret_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    file = tmp_path / "dev-secret"
    file.write_text("a-perfectly-long-random-looking-secret-Xq93\n")
    file.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        Settings(dev=True, dev_secret_file=file).signing_secrets  # noqa: B018


@pytest.mark.parametrize("content", ["short", "x" * 15, "old-secret-0123456789,new-secret-0123456"])
def test_a_dev_secret_file_with_a_bad_secret_is_refused(tmp_path: Path, content: str) -> None:
    file = tmp_path / "dev-secret"
    file.write_text(content + "\n")
    file.chmod(0o600)
    with pytest.raises(ConfigError, match=str(file)):
        Settings(dev=True, dev_secret_file=file).signing_secrets  # noqa: B018


@pytest.mark.parametrize(
    ("secret", "weak"),
    [
        ("a" * 16, True),
        ("abcdabcdabcdabcd", True),
        ("passwordpassword", True),
        ("correct horse battery staple", False),
        ("kX9-vQ2_mR7pL4zT", False),  # 16 random-looking characters
    ],
)
def test_low_entropy_secrets_get_a_warning(
    secret: str, weak: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogproxy")
    Settings(secrets=("old-but-fine-secret-0123456789", secret))
    warned = [r.getMessage() for r in caplog.records if "guessable" in r.getMessage()]
    assert bool(warned) == weak, warned
    assert all("secret 2 of 2" in m and secret not in m for m in warned)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", 2**30),
        ("500MB", 500 * 10**6),
        ("64MiB", 64 * 2**20),
        ("65536", 65536),
        ("2 g", 2 * 10**9),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text, "X") == expected


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"OGPROXY_CACHE_SIZE": "lots"}, "OGPROXY_CACHE_SIZE"),
        ({"OGPROXY_PORT": "http"}, "OGPROXY_PORT"),
        ({"OGPROXY_PORT": "70000"}, "OGPROXY_PORT"),
        ({"OGPROXY_PAGES": "0"}, "OGPROXY_PAGES"),
        ({"OGPROXY_RENDER_TIMEOUT": "0"}, "OGPROXY_RENDER_TIMEOUT"),
        ({"OGPROXY_DEV": "maybe"}, "OGPROXY_DEV"),
        ({"OGPROXY_LOG_LEVEL": "loud"}, "OGPROXY_LOG_LEVEL"),
        ({"OGPROXY_WORKERS": "0"}, "OGPROXY_WORKERS"),
        ({"OGPROXY_FONTS_DIR": "/nonexistent"}, "OGPROXY_FONTS_DIR"),
        ({"OGPROXY_ASSET_FAILURE": "ignore"}, "OGPROXY_ASSET_FAILURE"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"OGPROXY_SECRET": "x" * 20, **env})


@pytest.mark.parametrize(
    ("given", "read"), [(None, "degrade"), ("fail", "fail"), ("render", "degrade")]
)
def test_asset_failure_degrades_by_default_and_reads_the_old_render_as_degrade(
    given: str | None, read: str
) -> None:
    """`render` rendered without the asset and kept that card for a year; `degrade`
    renders without it too, but for a minute (cards.py)."""
    env = {"OGPROXY_SECRET": "x" * 20, **({"OGPROXY_ASSET_FAILURE": given} if given else {})}
    settings = Settings.from_env(env)
    assert settings.asset_failure == read
    assert Settings.from_env(settings.to_env()).asset_failure == read


def test_dev_mode_refuses_a_real_secret_and_a_public_bind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--dev"):
        Settings(dev=True, secrets=("production-secret-0123456789",))
    with pytest.raises(ConfigError, match="--dev"):
        Settings(dev=True, host="0.0.0.0", dev_secret_file=tmp_path / "s")
    forced = Settings(
        dev=True, host="0.0.0.0", secrets=("production-secret-0123456789",), unsafe_dev=True
    )
    assert forced.dev and forced.host == "0.0.0.0"
    assert Settings(dev=True, host="localhost", dev_secret_file=tmp_path / "s").dev


def test_every_setting_survives_to_env_and_back(tmp_path: Path) -> None:
    """What `serve --workers N` hands its workers is what they rebuild, setting by setting."""
    folder = tmp_path / "dir"
    folder.mkdir()
    changed = Settings(
        secrets=("old-secret-0123456789", "new-secret-0123456789"),
        dev=True,
        dev_secret_file=tmp_path / "dev",
        host="127.0.0.2",
        port=9001,
        cache_dir=tmp_path / "cache",
        cache_size=3 * 2**20,
        memory_cache=5 * 2**20,
        chromium="/opt/chrome",
        templates_dir=folder,
        fonts_dir=folder,
        browsers=3,
        pages=5,
        queue=7,
        png_palette=True,
        render_timeout=2.5,
        asset_origins=("https://a.example", "https://b.example"),
        asset_timeout=1.5,
        head_timeout=3.0,
        asset_failure="fail",
        api_keys=("key-1", "key-2"),
        admin_token="admin-token",
        public_url="https://og.example.com/og.png",
        workers=3,
        access_log=False,
        log_level="debug",
        log_format="text",
        trusted_proxies="10.0.0.0/8",
        network_isolation="flags",
        browser_sandbox="off",
        browser_user="ogproxy-browser",
        trusted_templates=True,
        unsafe_dev=True,
        store="s3://cards/og",
    )
    defaults = Settings(secrets=("x" * 16,))
    for declared in declarations():  # the case above must change every setting
        assert getattr(changed, declared.name) != getattr(defaults, declared.name), declared.env
    assert Settings.from_env(changed.to_env()) == changed
    assert Settings.from_env(defaults.to_env()) == defaults


def test_readme_settings_table_matches_the_declarations() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `OGPROXY_")]
    expected = [f"| `{d.env}` | `{d.flag}` | {d.shown} |" for d in declarations()]
    assert rows == expected, "\n".join(expected)


def test_secrets_from_files_the_docker_secrets_way(tmp_path: Path) -> None:
    secret = tmp_path / "ogproxy_secret"
    secret.write_text("old-secret-0123456789\nnew-secret-0123456789\n")
    keys = tmp_path / "api_keys"
    keys.write_text("key-one-0123456789,key-two-0123456789\n")
    token = tmp_path / "admin_token"
    token.write_text("admin-token-0123456789\n")
    settings = Settings.from_env(
        {
            "OGPROXY_SECRET_FILE": str(secret),
            "OGPROXY_API_KEYS_FILE": str(keys),
            "OGPROXY_ADMIN_TOKEN_FILE": str(token),
        }
    )
    assert settings.signing_secrets == ("old-secret-0123456789", "new-secret-0123456789")
    assert settings.api_keys == ("key-one-0123456789", "key-two-0123456789")
    assert settings.admin_token == "admin-token-0123456789"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OGPROXY_SECRET": "a-secret-0123456789", "OGPROXY_SECRET_FILE": "{file}"},
            "OGPROXY_SECRET and OGPROXY_SECRET_FILE are both set",
        ),
        ({"OGPROXY_SECRET_FILE": "{missing}"}, "OGPROXY_SECRET_FILE: cannot read .*missing"),
        ({"OGPROXY_API_KEYS_FILE": "{folder}"}, "OGPROXY_API_KEYS_FILE: cannot read"),
        ({"OGPROXY_SECRET_FILE": "{empty}"}, "OGPROXY_SECRET is missing"),
    ],
)
def test_bad_secret_files_name_the_setting(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "file").write_text("a-secret-0123456789")
    (tmp_path / "empty").write_text("\n")
    paths = {n: str(tmp_path / n) for n in ("file", "missing", "empty")} | {"folder": str(tmp_path)}
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({k: v.format(**paths) for k, v in env.items()})


def test_defaults_follow_the_cores_this_process_may_use(tmp_path: Path) -> None:
    """Pinned to one core (taskset, a container's cpuset), the defaults are one core's."""
    import shutil
    import subprocess
    import sys

    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    code = "from ogproxy.config import Settings; s = Settings(dev=True); print(s.pages, s.browsers)"
    pinned = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True
    )
    assert pinned.stdout.split() == ["2", "1"], pinned.stderr


@pytest.mark.parametrize(
    ("cores", "browsers"), [(1, 1), (2, 2), (3, 2), (4, 2), (6, 2), (8, 3), (16, 6), (64, 16)]
)
def test_browsers_follow_the_cores(cores: int, browsers: int) -> None:
    """One Chromium keeps about three cores busy (CORES_PER_BROWSER; bench/README)."""
    assert browsers_for(cores) == browsers
