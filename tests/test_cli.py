from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ogproxy import verify_url
from ogproxy.cli import main
from tests.support.s3server import Weed
from tests.support.servers import free_port


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
    assert verify_url(result.stdout.strip(), secret_file.read_text().strip())["author"] == "Ann"


def test_sign_dev_says_when_it_made_a_new_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dev server started elsewhere keeps its secret there: a new one made here signs
    URLs that server refuses, so `sign --dev` says it made one (on stderr, once)."""
    monkeypatch.chdir(tmp_path)
    env = {k: None for k in os.environ if k.startswith("OGPROXY_")}
    first = CliRunner().invoke(main, ["sign", "--dev", "--title", "x"], env=env)
    assert first.exit_code == 0, first.output
    made = tmp_path / ".ogproxy" / "dev-secret"
    assert verify_url(first.stdout.strip(), made.read_text().strip()) == {"title": "x"}
    assert f"made a new dev secret in {made}" in first.stderr
    assert "serve --dev" in first.stderr
    again = CliRunner().invoke(main, ["sign", "--dev", "--title", "x"], env=env)
    assert again.exit_code == 0 and again.stderr == "" and again.stdout == first.stdout


def test_sign_and_meta_sign_html_without_a_title() -> None:
    html = "<h1 style='font-size:90px'>Custom</h1>"
    env = {"OGPROXY_SECRET": GOOD_SECRET}
    signed = CliRunner().invoke(main, ["sign", "--param", f"html={html}"], env=env)
    assert signed.exit_code == 0, signed.output
    assert verify_url(signed.stdout.strip(), GOOD_SECRET) == {"html": html}
    meta = CliRunner().invoke(main, ["meta", "--param", f"html={html}"], env=env)
    assert meta.exit_code == 0, meta.output
    assert 'property="og:image:alt"' not in meta.stdout
    neither = CliRunner().invoke(main, ["sign", "--subtitle", "x"], env=env)
    assert neither.exit_code == 2 and "--title is required" in neither.stderr


def test_sign_reads_the_public_url_as_serve_does() -> None:
    env = {"OGPROXY_SECRET": GOOD_SECRET, "OGPROXY_PUBLIC_URL": "https://og.example.com/og.webp"}
    result = CliRunner().invoke(main, ["sign", "--title", "x"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("https://og.example.com/og.webp?title=x&sig=")
    # --base-url (and OGPROXY_BASE_URL) still work: another name for the same option.
    flag = CliRunner().invoke(
        main, ["sign", "--title", "x", "--base-url", "https://cdn.example/og.png"], env=env
    )
    assert flag.stdout.startswith("https://cdn.example/og.png?"), flag.output
    port = CliRunner().invoke(
        main, ["sign", "--title", "x"], env={"OGPROXY_SECRET": GOOD_SECRET, "OGPROXY_PORT": "9000"}
    )
    assert port.stdout.startswith("http://127.0.0.1:9000/og.png?"), port.output


def test_sign_takes_the_asset_origins_serve_takes() -> None:
    avatar = "https://cdn.example.com/ann.png"
    args = ["sign", "--title", "x", "--template", "gradient", "--param", f"avatar={avatar}"]
    env = {"OGPROXY_SECRET": GOOD_SECRET}
    refused = CliRunner().invoke(main, args, env=env)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "Error: Invalid parameter 'avatar': https://cdn.example.com is not an allowed "
        "image origin (OGPROXY_ASSET_ORIGINS)"
    )
    for more in (["--asset-origins", "https://*.example.com"], []):
        allowed = CliRunner().invoke(
            main, args + more, env={**env, "OGPROXY_ASSET_ORIGINS": "https://cdn.example.com"}
        )
        assert allowed.exit_code == 0, allowed.output
        assert verify_url(allowed.stdout.strip(), GOOD_SECRET)["avatar"] == avatar


@pytest.mark.parametrize(("port", "secret_file"), [(9000, "elsewhere/secret"), (8000, None)])
def test_the_dev_banner_hint_signs_for_the_server_that_printed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: int, secret_file: str | None
) -> None:
    """`make run PORT=9000` printed a `sign` command that signed for port 8000."""
    import shlex

    from ogproxy.app import dev_banner
    from ogproxy.config import DEFAULT_DEV_SECRET_FILE, Settings

    monkeypatch.chdir(tmp_path)
    settings = Settings(
        dev=True, port=port, dev_secret_file=Path(secret_file or DEFAULT_DEV_SECRET_FILE)
    )
    hint = next(line for line in dev_banner(settings).splitlines() if "ogproxy sign" in line)
    command = shlex.split(hint.split(": ", 1)[1])
    assert command[0].endswith("ogproxy")
    env = {k: None for k in os.environ if k.startswith("OGPROXY_")}
    result = CliRunner().invoke(main, command[1:], env=env)
    assert result.exit_code == 0 and result.stderr == "", result.output
    url = result.stdout.strip()
    assert url.startswith(f"http://127.0.0.1:{port}/og.png?")
    assert verify_url(url, settings.signing_secrets[-1]) == {"title": "My post"}


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


@pytest.mark.parametrize("command", [["serve", "--dev"], ["render", "--title", "x", "-o", "c.png"]])
def test_serve_and_render_without_a_browser_say_how_to_get_one(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "--chromium", str(tmp_path / "nope")])
    assert result.exit_code == 1, result.output
    assert "OGPROXY_CHROMIUM" in result.output and "does not exist" in result.output
    assert "apt-get install chromium-headless-shell" in result.output
    assert not (tmp_path / "c.png").exists()


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


def test_no_browser_anywhere_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_serve_reads_secret_and_api_key_files(tmp_path: Path) -> None:
    """A real `ogproxy serve` with OGPROXY_SECRET_FILE and OGPROXY_API_KEYS_FILE only."""
    from ogproxy_sign import sign_url

    from tests.support.servers import serve

    (tmp_path / "secret").write_text("old-secret-0123456789\nfile-secret-0123456789\n")
    (tmp_path / "keys").write_text("file-key-0123456789\n")
    env = {
        "OGPROXY_SECRET_FILE": str(tmp_path / "secret"),
        "OGPROXY_API_KEYS_FILE": str(tmp_path / "keys"),
    }
    with serve(tmp_path / "run", env=env, fake=True) as server:
        for secret, status in (
            ("file-secret-0123456789", 400),  # signed right: checked up to the bad colour
            ("old-secret-0123456789", 400),
            ("other-secret-0123456789", 403),
        ):
            url = sign_url(server.base + "/og.png", secret, {"title": "x", "accentColor": "no"})
            assert httpx.get(url, timeout=30).status_code == status, secret
        for key, status in (("file-key-0123456789", 400), ("other-key-0123456789", 401)):
            answer = httpx.post(
                server.base + "/v1/og-image", json={"width": "wide"}, headers={"x-api-key": key}
            )
            assert answer.status_code == status, key
    assert "file-secret" not in server.output() and "file-key" not in server.output()


def test_secret_file_problems_are_one_line_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["sign", "--title", "x"], env={"OGPROXY_SECRET_FILE": str(tmp_path / "none")}
    )
    assert result.exit_code == 1 and result.exception is not None
    assert "OGPROXY_SECRET_FILE: cannot read" in result.output


# Every misuse an operator is likely to make: a one-line error on stderr naming the
# problem, the documented exit code (2: input the server would refuse or bad usage;
# 1: a file, site or folder that cannot be used), and never a traceback.
GOOD_SECRET = "operator-secret-0123456789"
MISUSES = [
    (["sign", "--title", "x", "--template", "fancy"], 2, "unknown template 'fancy'"),
    (["sign", "--title", "x", "--accent-color", "blue"], 2, "'accentColor'"),
    (["sign", "--title", "x", "--param", "colour=red"], 2, "'colour': unknown parameter"),
    (["sign", "--title", "x", "--param", "width=9999"], 2, "'width'"),
    (["sign", "--title", "x", "--secret", "short"], 2, "shorter than 16 bytes"),
    (["sign", "--title", "x", "--base-url", "https://og.example.com/card"], 2, "--public-url"),
    (["sign", "--title", "x", "--param", "sig=forged"], 2, "sig"),
    (
        ["sign", "--title", "x", "--template", "gradient", "--param", "logo=https://a.example/l"],
        2,
        "'logo': https://a.example is not an allowed image origin (OGPROXY_ASSET_ORIGINS)",
    ),
    (
        ["sign", "--title", "x", "--template", "gradient", "--param", "logo=https://a:99999/"],
        2,
        "'logo': is not a valid URL",
    ),
    (["sign", "--title", "🚀" * 200, "--subtitle", "🚀" * 300], 2, "Query string too long"),
    (["meta", "--title", "🚀" * 200, "--param", "author=" + "🚀" * 200], 2, "Query string too"),
    (["sign", "--title", "x", "--base-url", "http://[::1"], 2, "--public-url"),
    (["sign", "--title", "x", "--base-url", "http://og.example.com/og.png?v=2"], 2, "--public-url"),
    (["sign", "--title", "x", "--base-url", "http://og.example.com/og.png#top"], 2, "--public-url"),
    (["sign", "--title", "x", "--base-url", "ftp://og.example.com/og.png"], 2, "--public-url"),
    (["sign", "--title", "x", "--base-url", "http:///og.png"], 2, "--public-url"),
    (
        ["meta", "--title", "x", "--base-url", "http://og.example.com:99999/og.png"],
        2,
        "--public-url",
    ),
    (["warm", "http://[::1"], 2, "SOURCE"),
    (["warm", "http://[::1/sitemap.xml"], 2, "SOURCE"),
    (["meta", "--title", "x", "--param", "width=wide"], 2, "'width'"),
    (["meta", "--title", "x", "--template", "fancy"], 2, "unknown template 'fancy'"),
    (["warm", "{tmp}/missing.xml"], 1, "missing.xml: No such file or directory"),
    (["warm", "{tmp}/binary.xml"], 1, "not UTF-8 text"),
    (["warm", "{tmp}/index.xml"], 1, "a sitemap index may only list http(s) URLs"),
    (["warm", "http://127.0.0.1:{closed}/sitemap.xml"], 1, "cannot fetch it (ConnectError"),
    (["warm", "{site}/missing-sitemap.xml"], 1, "missing-sitemap.xml: HTTP 404"),
    (["render", "--input", "{tmp}/binary.jsonl"], 1, "not UTF-8 text"),
    (["render", "--title", "x", "-o", "{tmp}/file/card.png"], 1, "file: File exists"),
    (["cache", "prune", "--to", "lots", "--cache-dir", "{tmp}"], 2, "--to: cannot read"),
    (["cache", "stats", "--cache-dir", "{tmp}/none"], 1, "no cache at"),
    # A setting, like every other: a configuration error (1) that names its variable.
    (["serve", "--trusted-proxies", "10.0.0.0/8,proxy"], 1, "OGPROXY_TRUSTED_PROXIES: 'proxy'"),
]


@pytest.fixture(scope="module")
def not_found_site() -> Iterator[str]:
    """A loopback HTTP server that answers 404 to everything."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("args", "code", "message"), MISUSES, ids=lambda v: str(v)[:40])
def test_misuse_is_a_one_line_error(
    args: list[str], code: int, message: str, tmp_path: Path, not_found_site: str
) -> None:
    (tmp_path / "binary.xml").write_bytes(b"\xff\xfe<urlset>\x00")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe{}\n")
    # A sitemap index naming a file on this machine: warm must not read local files for it.
    (tmp_path / "index.xml").write_text(
        f"<sitemapindex><sitemap><loc>{tmp_path / 'binary.xml'}</loc></sitemap></sitemapindex>"
    )
    (tmp_path / "file").write_text("a file where a folder should be")
    values = {"tmp": tmp_path, "closed": free_port(), "site": not_found_site}
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OGPROXY_")}
    env.update(OGPROXY_SECRET=GOOD_SECRET, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    # In process (a subprocess per case cost a minute): an exception that escapes the
    # command is caught by the runner and fails the first assertion, as a traceback would.
    result = CliRunner().invoke(main, [a.format(**values) for a in args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exc_info
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""  # nothing printed that looks like a result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message in lines[0], lines[0]


def test_cache_commands_know_the_object_store(tmp_path: Path, weed: Weed, store_url: str) -> None:
    import asyncio

    from ogproxy.integrity import CardSeal
    from ogproxy.objectstore import ObjectTier

    async def fill() -> None:
        tier = await ObjectTier.open(store_url, weed.env(), CardSeal(["cli-test-secret-0123456"]))
        for i in range(3):
            await tier.put(f"{i:064x}", "png", b"\x89PNG" + bytes(2**20))
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


def test_serve_with_a_missing_bucket_fails_before_starting(tmp_path: Path, weed: Weed) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--dev", "--dev-secret-file", str(tmp_path / "s"), "--store", "s3://nope-x/p"],
        env=weed.env(),
    )
    assert result.exit_code == 1
    assert "OGPROXY_STORE: bucket of s3://nope-x/p does not exist" in result.output
