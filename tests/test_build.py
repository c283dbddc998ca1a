"""`ogproxy render`, `ogproxy meta` and `ogproxy warm`, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from html import unescape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from ogproxy import verify_url
from ogproxy.batch import manifest_path
from ogproxy.cli import main
from tests.support.cards import SECRET, png_image, signed
from tests.support.s3server import Weed, bucket_objects
from tests.support.servers import FAKE_CLI, REPO, metric, serve


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env or {})
    return result.exit_code, result.output


@pytest.mark.usefixtures("fake_chromium")
def test_render_many_from_jsonl_then_skip_unchanged(tmp_path: Path) -> None:
    cards = tmp_path / "cards.jsonl"
    lines = [
        json.dumps(
            {"slug": f"post-{i}", "title": f"Post {i} 🚀", "template": t, "author": "Ann Lee"}
        )
        for i, t in zip(range(24), ["default", "minimal", "gradient"] * 8, strict=True)
    ]
    lines += [
        '{"slug": "empty", "title": ""}',
        "not json",
        '{"slug": "u", "title": "x", "bogus": 1}',
    ]
    cards.write_text("\n".join(lines) + "\n")
    out, cache = tmp_path / "out", tmp_path / "cache"
    code, output = run(
        "render", "--input", str(cards), "--out-dir", str(out), "--cache-dir", str(cache)
    )
    assert code == 1, output  # three bad lines
    assert "24 rendered, 0 unchanged (skipped), 3 failed" in output
    assert "line 25: Invalid parameter 'title': must not be empty" in output
    assert "line 26: not JSON" in output and "line 27: Invalid parameter 'bogus'" in output
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == sorted(f"post-{i}.png" for i in range(24))
    assert png_image((out / "post-5.png").read_bytes()).size == (1200, 630)
    # The skip manifest is kept in the cache: the output folder holds the images only.
    assert sorted(p.name for p in out.iterdir()) == files
    manifest = json.loads(manifest_path(cache, out).read_text())
    assert set(manifest) == set(files)

    (out / "post-3.png").unlink()
    edited = lines[:24]
    edited[7] = json.dumps({"slug": "post-7", "title": "Post 7, edited", "template": "minimal"})
    cards.write_text("\n".join(edited) + "\n")
    code, output = run(
        "render", "--input", str(cards), "--out-dir", str(out), "--cache-dir", str(cache)
    )
    assert code == 0, output
    # A deleted file written again is neither a new card nor an unchanged one.
    assert "1 rendered, 1 restored, 22 unchanged (skipped), 0 failed" in output
    assert (out / "post-3.png").is_file()
    code, output = run(
        "render", "--input", str(cards), "--out-dir", str(out), "--cache-dir", str(cache)
    )
    assert code == 0, output
    assert "0 rendered, 24 unchanged (skipped), 0 failed in " in output
    assert "cards/s" not in output  # nothing rendered: no rate of 0.0


@pytest.mark.usefixtures("fake_chromium")
def test_render_writes_again_a_file_that_is_no_longer_an_image(tmp_path: Path) -> None:
    """A file of an unchanged card is skipped only if it is still an image of its format:
    one emptied by a full disk or overwritten is not uploaded with --store as the card
    (sealed under the card's key), it is rendered again."""
    cards = tmp_path / "cards.jsonl"
    cards.write_text(
        "".join(json.dumps({"slug": f"p{i}", "title": f"T {i}"}) + "\n" for i in range(3))
    )
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ("render", "--input", str(cards), "--out-dir", str(out), "--cache-dir", str(cache))
    assert run(*args)[0] == 0
    good = (out / "p1.png").read_bytes()
    (out / "p0.png").write_bytes(b"")
    (out / "p1.png").write_bytes(b"<html>not a card</html>")
    code, output = run(*args)
    assert code == 0, output
    assert "0 rendered, 2 restored, 1 unchanged (skipped)" in output, output
    assert (out / "p1.png").read_bytes() == good
    assert png_image((out / "p0.png").read_bytes()).size == (1200, 630)


@pytest.mark.usefixtures("fake_chromium")
def test_render_from_csv_and_single_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "cards.csv"
    csv_file.write_text(
        "name,title,subtitle,template\nhello,Hello CSV,From a spreadsheet,gradient\n"
        "plain,Plain one,,\n"
    )
    code, output = run(
        "render",
        "--input",
        str(csv_file),
        "--out-dir",
        str(tmp_path / "csv"),
        "--format",
        "webp",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert code == 0, output
    assert png_image((tmp_path / "csv" / "hello.webp").read_bytes()).format == "WEBP"
    one = tmp_path / "single" / "card.jpg"
    code, output = run(
        "render",
        "--title",
        "Just one",
        "--param",
        "width=600",
        "--param",
        "height=315",
        "-o",
        str(one),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert code == 0, output
    image = png_image(one.read_bytes())
    assert image.format == "JPEG" and image.size == (600, 315)
    code, output = run("render", "--title", "x", "-o", str(tmp_path / "x.gif"))
    assert code == 2 and "must end in .png, .jpg or .webp" in output


def render_rows(tmp_path: Path, name: str, text: str, *args: str) -> tuple[int, str]:
    """`ogproxy render` of ``text`` saved as ``name``, into tmp_path/out."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    folders = ("--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    return run("render", "--input", str(tmp_path / name), *folders, *args)


def written(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").glob("*"))


@pytest.mark.usefixtures("fake_chromium")
@pytest.mark.parametrize("name", ["cards.csv", "cards.jsonl"])
def test_render_ignores_a_byte_order_mark(tmp_path: Path, name: str) -> None:
    """Excel's "CSV UTF-8" starts with a BOM: it became part of the first column's name."""
    text = (
        "slug,title\nhello,Hello\n" if name.endswith("csv") else '{"slug":"hello","title":"Hi"}\n'
    )
    code, output = render_rows(tmp_path, name, "\ufeff" + text)
    assert code == 0, output
    assert written(tmp_path) == ["hello.png"]


@pytest.mark.usefixtures("fake_chromium")
def test_render_refuses_unknown_columns_unless_told_to_ignore_them(tmp_path: Path) -> None:
    """An export's extra columns failed every row, one line each; now one error before
    anything is rendered, and --ignore-unknown leaves them out."""
    text = "slug,title,tags,date,template,author\na,A,x,2026-01-01,gradient,Ann\nb,B,y,,minimal,\n"
    code, output = render_rows(tmp_path, "cards.csv", text)
    assert code == 2, output
    assert output.strip().splitlines() == [
        f"Error: --input {tmp_path / 'cards.csv'}: columns 'tags', 'date' are not a "
        "parameter of any template; --ignore-unknown leaves them out"
    ]
    assert not (tmp_path / "out").exists() or written(tmp_path) == []
    code, output = render_rows(tmp_path, "cards.csv", text, "--ignore-unknown")
    assert code == 0, output
    assert written(tmp_path) == ["a.png", "b.png"]
    # A key one row's template does not take fails that row, unless ignored.
    rows = '{"slug": "c", "title": "C", "template": "minimal", "author": "Ann", "tags": "x"}\n'
    code, output = render_rows(tmp_path, "cards.jsonl", rows)
    assert code == 1 and "line 1: Invalid parameter " in output, output
    code, output = render_rows(tmp_path, "cards.jsonl", rows, "--ignore-unknown")
    assert code == 0, output
    assert "c.png" in written(tmp_path)


@pytest.mark.usefixtures("fake_chromium")
def test_render_reports_rows_that_write_the_same_file_and_rewritten_names(
    tmp_path: Path,
) -> None:
    text = (
        "slug,title\n"
        "post-1,First\n"  # line 2
        "../evil,Evil\n"  # line 3: written as evil.png
        "post-1,Second\n"  # line 4: the same file as line 2
        "My Post,Spaces\n"  # line 5: written as My-Post.png
        "Post-1,Third\n"  # line 6: the same file on a case-insensitive disk
    )
    code, output = render_rows(tmp_path, "cards.csv", text)
    assert code == 1, output
    lines = output.splitlines()
    assert "  line 4: writes post-1.png, as line 2 does (give each row its own name)" in lines
    assert "  line 6: writes Post-1.png, as line 2 does (give each row its own name)" in lines
    assert "  line 3: name '../evil' written as evil.png" in lines
    assert "  line 5: name 'My Post' written as My-Post.png" in lines
    assert written(tmp_path) == ["My-Post.png", "evil.png", "post-1.png"]
    assert "3 rendered" in output and "2 failed" in output


@pytest.mark.usefixtures("fake_chromium")
def test_render_prints_each_problem_on_one_line_as_it_is(tmp_path: Path) -> None:
    """rich wrapped long error lines mid-message and read [brackets] as markup."""
    text = '{"slug": "a", "title": "x", "template": "[bold]fancy-and-rather-long-name"}\n'
    code, output = render_rows(tmp_path, "cards.jsonl", text)
    assert code == 1, output
    problem = next(line for line in output.splitlines() if line.startswith("  line 1: "))
    assert "unknown template '[bold]fancy-and-rather-long-name'; one of " in problem
    assert len(problem) > 100 and problem.rstrip().endswith("minimal")


@pytest.mark.usefixtures("fake_chromium")
def test_render_one_card_of_html_without_a_title(tmp_path: Path) -> None:
    one = tmp_path / "html.png"
    code, output = run("render", "--param", "html=<h1>Mine</h1>", "-o", str(one))
    assert code == 0, output
    assert png_image(one.read_bytes()).size == (1200, 630)


def test_render_writes_the_file_named_and_nothing_in_the_project(tmp_path: Path) -> None:
    """`-o card.jpeg` writes card.jpeg (not card.jpg); without --cache-dir the cache and
    the manifest go to the user's cache folder, not into the current (project) folder."""
    project, xdg = tmp_path / "site", tmp_path / "xdg"
    (project / "public").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGPROXY_")}
    env["XDG_CACHE_HOME"] = str(xdg)
    env["PYTHONPATH"] = str(REPO)  # the fake renderer's CLI, run from the project
    command = [*FAKE_CLI, "render", "--title", "JPEG"]
    proc = subprocess.run(
        [*command, "-o", "public/card.jpeg"], cwd=project, env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == [
        "public",
        "public/card.jpeg",
    ]
    assert png_image((project / "public" / "card.jpeg").read_bytes()).format == "JPEG"
    assert manifest_path(xdg / "ogproxy" / "cache", project / "public").is_file()


def test_meta_prints_tags_with_a_verifiable_url() -> None:
    code, output = run(
        "meta",
        "--title",
        "Hello <meta>",
        "--param",
        "scale=2",
        "--base-url",
        "https://og.example.com/og.png",
        env={"OGPROXY_SECRET": SECRET},
    )
    assert code == 0, output
    assert '<meta property="og:image:width" content="2400">' in output
    assert '<meta property="og:image:height" content="1260">' in output
    assert '<meta name="twitter:card" content="summary_large_image">' in output
    assert '<meta property="og:image:alt" content="Hello &lt;meta&gt;">' in output
    found = re.search(r'property="og:image" content="([^"]+)"', output)
    assert found is not None, output
    url = unescape(found.group(1))
    assert verify_url(url, SECRET) == {"title": "Hello <meta>", "scale": "2"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static site on loopback (pages + sitemap), written by the test."""
    root = tmp_path / "site"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_warm_renders_every_og_image_of_a_sitemap(tmp_path: Path, site: tuple[Path, str]) -> None:
    root, origin = site
    with serve(tmp_path, env={"OGPROXY_SECRET": SECRET}, fake=True) as og:
        locs = []
        for i in range(6):
            image = signed({"title": f"Launch page {i}"}, base=og.base + "/og.png")
            tags = f'<meta property="og:image" content="{image.replace("&", "&amp;")}">'
            if i == 0:  # the same card twice on one page is requested once
                tags += f'<meta name="twitter:image" content="{image.replace("&", "&amp;")}">'
            (root / f"p{i}.html").write_text(f"<html><head>{tags}</head><body>{i}</body></html>")
            locs.append(f"<url><loc>{origin}/p{i}.html</loc></url>")
        (root / "no-card.html").write_text("<html><head><title>x</title></head></html>")
        locs.append(f"<url><loc>{origin}/no-card.html</loc></url>")
        (root / "sitemap.xml").write_text(
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(locs)
            + "</urlset>"
        )
        code, output = run("warm", f"{origin}/sitemap.xml", "--concurrency", "4")
        assert code == 0, output
        assert "7 pages, 6 images: 6 x 200 MISS" in output
        code, output = run("warm", f"{origin}/sitemap.xml")
        assert "7 pages, 6 images: 6 x 200 HIT" in output

        (root / "list.txt").write_text(f"# pages\n{origin}/p1.html\n{origin}/missing.html\n")
        code, output = run("warm", str(root / "list.txt"))
        assert code == 1 and "page: HTTPStatusError" in output


def test_warm_reports_and_skips_what_it_cannot_request(site: tuple[Path, str]) -> None:
    """A page URL or og:image no HTTP client can request is one reported failure, and
    warm goes on with the rest (each used to end it with a traceback)."""
    root, origin = site
    image = f"{origin}/card.png"  # a 404 here: still a request, counted by its status
    for name, content in (("bad-image", "http://[::1/og.png"), ("good", image)):
        tag = f'<meta property="og:image" content="{content}">'
        (root / f"{name}.html").write_text(f"<html><head>{tag}</head></html>")
    (root / "list.txt").write_text(
        f"http://[::1/page\n{origin}/bad-image.html\nhttp://x:99999/\n{origin}/good.html\n"
    )
    code, output = run("warm", str(root / "list.txt"))
    assert code == 1, output
    assert "4 pages, 2 images: 1 x 404" in output
    assert "page: not a URL that can be requested" in output and "http://[::1/page" in output
    assert "http://x:99999/" in output
    assert "not a URL that can be requested: http://[::1/og.png" in output
    assert "Traceback" not in output


def test_warm_reports_a_degraded_card_as_a_failure(tmp_path: Path, site: tuple[Path, str]) -> None:
    """A card served without an asset is a 200 that a launch must not count as warm."""
    from tests.support.assethost import asset_host

    root, origin = site
    with (
        asset_host() as cdn,
        serve(
            tmp_path, "--asset-origins", cdn.origin, env={"OGPROXY_SECRET": SECRET}, fake=True
        ) as og,
    ):
        image = signed(
            {"title": "Launch", "avatar": cdn.url("/gone.png")}, base=og.base + "/og.png"
        )
        tag = f'<meta property="og:image" content="{image.replace("&", "&amp;")}">'
        (root / "p.html").write_text(f"<html><head>{tag}</head></html>")
        (root / "list.txt").write_text(f"{origin}/p.html\n")
        code, output = run("warm", str(root / "list.txt"))
        output = " ".join(output.split())
        assert code == 1, output
        assert "1 pages, 1 images: 1 x 200 DEGRADED" in output
        assert "rendered without an asset that failed (see the server's log): " in output
        assert image.split("&")[0] in "".join(output.split())


@pytest.mark.usefixtures("fake_chromium")
@pytest.mark.parametrize("mode", ["degrade", "fail"])
def test_render_reports_asset_failures_per_line(tmp_path: Path, mode: str) -> None:
    """Either way a failed asset is reported on its line and the exit code is 1; degrade
    writes the card without it (never as unchanged: the next run tries again), fail
    writes nothing."""
    import io

    from PIL import Image

    from tests.support.assethost import Reply, asset_host

    red = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(red, "PNG")
    with asset_host() as host:
        host.routes["/a.png"] = Reply(red.getvalue(), "image/png")
        cards = tmp_path / "cards.jsonl"
        lines = [
            {"slug": "ok", "title": "Fetched", "avatar": host.url("/a.png")},
            {"slug": "missing", "title": "404", "avatar": host.url("/missing.png")},
            {"slug": "elsewhere", "title": "Refused", "logo": "http://127.0.0.1:9/a.png"},
        ]
        cards.write_text("".join(json.dumps(line) + "\n" for line in lines))
        out = tmp_path / "out"
        args = (
            "render",
            *("--input", str(cards), "--out-dir", str(out)),
            *("--cache-dir", str(tmp_path / "cache"), "--asset-origins", host.origin),
            *("--asset-failure", mode),
        )
        code, output = run(*args)
        output = " ".join(output.split())  # rich wraps long lines
        assert code == 1, output
        assert "1 rendered, 0 unchanged (skipped), 2 failed" in output
        assert f"line 2: {host.url('/missing.png')} answered HTTP 404" in output
        assert "line 3: Invalid parameter 'logo': http://127.0.0.1:9 is not an allowed" in output
        written = sorted(p.name for p in out.glob("*.png"))
        if mode == "fail":
            assert written == ["ok.png"]
            return
        assert "written without it" in output
        assert written == ["missing.png", "ok.png"]
        degraded = (out / "missing.png").read_bytes()
        # The origin recovers: the next run renders the real card.
        host.routes["/missing.png"] = Reply(red.getvalue(), "image/png")
        code, output = run(*args)
        output = " ".join(output.split())
        assert "1 rendered, 1 unchanged (skipped), 1 failed" in output, output
        assert (out / "missing.png").read_bytes() != degraded


@pytest.mark.usefixtures("fake_chromium")
def test_render_fills_the_object_store_so_a_fleet_starts_warm(
    tmp_path: Path, weed: Weed, store_url: str
) -> None:
    cards = tmp_path / "cards.jsonl"
    titles = [f"Warm from the build {i}" for i in range(3)]
    cards.write_text(
        "".join(json.dumps({"slug": f"p{i}", "title": t}) + "\n" for i, t in enumerate(titles))
    )
    out = tmp_path / "out"
    args = (
        "render",
        "--input",
        str(cards),
        "--out-dir",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    )
    # The cards it uploads are sealed with the servers' secret, which it needs for that.
    code, output = run(*args, "--store", store_url, env=weed.env())
    assert code == 2 and "--store needs the servers' OGPROXY_SECRET" in output, output
    env = {**weed.env(), "OGPROXY_SECRET": SECRET}
    code, output = run(*args, "--store", store_url, env=env)
    output = " ".join(output.split())  # rich wraps long lines
    assert code == 0, output
    assert f"object store {store_url}: 3 uploaded, 0 already there, 0 failed" in output
    assert len(bucket_objects(weed, store_url)) == 3
    # Unchanged cards are skipped, but still reach a store that lacks them.
    other = store_url + "-other"
    code, output = run(*args, "--store", other, env=env)
    output = " ".join(output.split())
    assert "0 rendered, 3 unchanged (skipped)" in output and "3 uploaded" in output, output
    code, output = run(*args, "--store", "s3://no-such-bucket", env=env)
    output = " ".join(output.split())
    assert code == 1 and "bucket of s3://no-such-bucket does not exist" in output
    with serve(
        tmp_path / "serve", "--secret", SECRET, "--store", store_url, env=weed.env(), fake=True
    ) as s:
        for title in titles:
            response = httpx.get(signed({"title": title}, base=s.base + "/og.png"), timeout=30)
            assert response.status_code == 200 and response.headers["x-cache"] == "HIT"
        assert metric(s, "ogproxy_renders_total") == 0
