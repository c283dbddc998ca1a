from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ogproxy import verify_url
from ogproxy.cli import main


def test_sign_prints_a_verifiable_url() -> None:
    result = CliRunner().invoke(
        main,
        [
            "sign",
            "--title",
            "Hello, wörld",
            "--subtitle",
            "Sub",
            "--template",
            "gradient",
            "--accent-color",
            "#abc",
            "--base-url",
            "https://og.example.com/og.png",
        ],
        env={"OGPROXY_SECRET": "old-secret-0123456789,new-secret-0123456789"},
    )
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith("https://og.example.com/og.png?accentColor=%23abc&subtitle=Sub&")
    assert verify_url(url, "new-secret-0123456789") == {
        "title": "Hello, wörld",
        "subtitle": "Sub",
        "template": "gradient",
        "accentColor": "#abc",
    }


def test_sign_with_dev_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "dev-secret"
    result = CliRunner().invoke(
        main,
        [
            "sign",
            "--dev",
            "--dev-secret-file",
            str(secret_file),
            "--title",
            "x",
            "--param",
            "author=Ann",
        ],
        env={},
    )
    assert result.exit_code == 0, result.output
    assert verify_url(result.output.strip(), secret_file.read_text().strip())["author"] == "Ann"


def test_sign_without_secret_says_how() -> None:
    result = CliRunner().invoke(main, ["sign", "--title", "x"], env={"OGPROXY_SECRET": ""})
    assert result.exit_code == 2
    assert "OGPROXY_SECRET" in result.output


def test_serve_refuses_without_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--cache-dir", str(tmp_path)], env={"OGPROXY_SECRET": "", "OGPROXY_DEV": ""}
    )
    assert result.exit_code == 1
    assert "OGPROXY_SECRET is missing" in result.output


def test_serve_reads_settings_from_env(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve"],
        env={
            "OGPROXY_SECRET": "x" * 20,
            "OGPROXY_CACHE_SIZE": "huge",
            "OGPROXY_CACHE_DIR": str(tmp_path),
        },
    )
    assert result.exit_code == 1
    assert "OGPROXY_CACHE_SIZE" in result.output


def test_missing_browser_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ogproxy.browser", "--check", "--chromium", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert (
        "does not exist" in proc.stderr and "apt-get install chromium-headless-shell" in proc.stderr
    )


def test_serve_with_a_missing_browser_fails_before_starting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--dev",
            "--dev-secret-file",
            str(tmp_path / "s"),
            "--chromium",
            str(tmp_path / "no-chromium"),
        ],
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output and "chromium-headless-shell" in result.output


def test_no_browser_anywhere_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    import pytest

    from ogproxy import browser
    from ogproxy.errors import ConfigError

    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    monkeypatch.setattr(browser, "system_chromium", lambda: None)
    with pytest.raises(ConfigError, match="playwright install"):
        browser.preflight(None)


def test_templates_lists_versions_that_change_with_the_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["templates"])
    assert result.exit_code == 0
    assert "gradient" in result.output and "params: author, avatar, logo" in result.output
    (tmp_path / "gradient.html").write_text("<h1>{{ title }}</h1>")
    mine = CliRunner().invoke(main, ["templates", "--templates-dir", str(tmp_path)])
    version = next(line for line in result.output.splitlines() if line.startswith("gradient"))
    assert version not in mine.output


def test_cache_stats_prune_and_clear(tmp_path: Path) -> None:
    import diskcache

    with diskcache.Cache(str(tmp_path), size_limit=50 * 2**20) as raw:
        for i in range(20):
            raw[f"k{i}"] = bytes(100_000)
    runner = CliRunner()
    stats = runner.invoke(main, ["cache", "stats", "--cache-dir", str(tmp_path)])
    assert stats.exit_code == 0 and "20 entries" in stats.output and "of 50 MiB" in stats.output
    pruned = runner.invoke(main, ["cache", "prune", "--to", "1MB", "--cache-dir", str(tmp_path)])
    assert pruned.exit_code == 0, pruned.output
    with diskcache.Cache(str(tmp_path)) as raw:
        assert raw.volume() <= 1_000_000 + 100_000 and raw.size_limit == 50 * 2**20
    refused = runner.invoke(main, ["cache", "clear", "--cache-dir", str(tmp_path)], input="n\n")
    assert refused.exit_code == 1
    cleared = runner.invoke(main, ["cache", "clear", "--yes", "--cache-dir", str(tmp_path)])
    assert cleared.exit_code == 0
    assert (
        "0 entries" in runner.invoke(main, ["cache", "stats", "--cache-dir", str(tmp_path)]).output
    )
    missing = runner.invoke(main, ["cache", "stats", "--cache-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no cache" in missing.output


def test_cache_commands_know_the_object_store(tmp_path: Path, weed, store_url: str) -> None:
    import asyncio

    from ogproxy.objectstore import ObjectTier

    async def fill() -> None:
        tier = await ObjectTier.open(store_url, weed.env())
        for i in range(3):
            await tier.put(f"{i:064x}", b"\x89PNG" + bytes(2**20))
            await asyncio.sleep(1.1 if i == 0 else 0)  # S3 times have one-second resolution

    asyncio.run(fill())
    runner, env = CliRunner(), {**weed.env(), "OGPROXY_STORE": store_url}
    cache = ["--cache-dir", str(tmp_path / "none")]
    stats = runner.invoke(main, ["cache", "stats", *cache], env=env)
    assert stats.exit_code == 0 and f"{store_url}: 3 objects, 3.0 MiB" in stats.output
    refused = runner.invoke(main, ["cache", "prune", *cache], env=env)
    assert refused.exit_code == 2 and "--store-to" in refused.output
    pruned = runner.invoke(main, ["cache", "prune", "--store-to", "2.5MiB", *cache], env=env)
    assert pruned.exit_code == 0 and "removed 1 objects" in pruned.output
    asked = runner.invoke(main, ["cache", "clear", *cache], env=env, input="n\n")
    assert asked.exit_code == 1 and "(shared by the fleet)" in asked.output
    cleared = runner.invoke(main, ["cache", "clear", "--yes", *cache], env=env)
    assert cleared.exit_code == 0 and "removed 2 objects" in cleared.output
    assert "0 objects" in runner.invoke(main, ["cache", "stats", *cache], env=env).output


def test_serve_with_a_missing_bucket_fails_before_starting(tmp_path: Path, weed) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--dev", "--dev-secret-file", str(tmp_path / "s"), "--store", "s3://nope-x/p"],
        env=weed.env(),
    )
    assert result.exit_code == 1
    assert "OGPROXY_STORE: bucket of s3://nope-x/p does not exist" in result.output
