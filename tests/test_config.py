from __future__ import annotations

from pathlib import Path

import pytest

from ogproxy.config import Settings, declarations, dev_secret, parse_size
from ogproxy.errors import ConfigError


def test_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OGPROXY_SECRET is missing"):
        Settings(cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="OGPROXY_SECRET is missing"):
        Settings.from_env({"OGPROXY_CACHE_DIR": str(tmp_path)})


def test_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
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
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"OGPROXY_SECRET": "x" * 20, **env})


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
        api_keys=("key-1", "key-2"),
        admin_token="admin-token",
        public_url="https://og.example.com/og.png",
        workers=3,
        access_log=False,
        log_level="debug",
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
