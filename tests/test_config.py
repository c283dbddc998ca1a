from __future__ import annotations

from pathlib import Path

import pytest

from ogproxy.config import Settings, dev_secret, parse_size
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
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"OGPROXY_SECRET": "x" * 20, **env})


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
