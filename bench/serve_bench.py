"""Serving benchmarks for ogproxy: the real `ogproxy serve` process over real HTTP.

Every scenario starts its own server (127.0.0.1 only, fresh cache directory, own
process group), loads it for a bounded time and number of requests, stops it (and
every Chromium it spawned) in a ``finally``, and returns a dict of numbers.

Scenarios (``quick`` shortens them; startup_time takes ``runs``, load_zero_errors a count):

- ``startup_time``: wall time from spawning ``ogproxy serve`` to the first 200 on
  ``/healthz`` (the app answers only once Chromium is up: it is launched in the
  lifespan), and to the first rendered card (a cold miss on a fresh cache).
- ``hits_vs_caddy``: cache-hit throughput and latency of one warm card under wrk,
  next to Caddy's ``file_server`` serving the very same PNG bytes from disk: how far
  the hit path is from a static file server on this machine.
- ``mixed_load``: hit throughput and p99 alone, then again while a stream of distinct
  misses (4 concurrent renders) competes for the same cores.
- ``untrusted_flood``: built-in misses one at a time alone, then while untrusted cards
  that ask for 22,000 refused URLs each render back to back (what one hostile card
  costs the others).
- ``load_zero_errors``: a bounded load (a given number of requests) cycling over 20
  warm cards; the point is zero non-2xx/3xx responses and zero socket errors.
- ``memory_growth``: memory (PSS when readable, else RSS) of the server and all its
  descendants (Node driver, Chromium processes) after 100 renders and after N; a ratio
  well above 1 hints at a leak (the in-memory PNG cache, 64 MiB by default, legitimately
  grows too).

Every scenario takes ``extra_env`` (e.g. ``{"OGPROXY_ACCESS_LOG": "0"}``), passed to the
server. By default the server runs as shipped, with its JSON access log (one line per
request, at any --log-level) written to the log file next to the cache folder.

Import the functions, or run ``.venv/bin/python bench/serve_bench.py`` for all of them
in quick mode, printed as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from ogproxy import config, procfs, sign_url
from tests.support.processes import (
    HOST,
    free_port,
    running,
    stop_tree,
    tail,
    wait_http,
)
from tests.support.wrk import cycle_script, run_wrk, wrk_until_markers

REPO = Path(__file__).resolve().parent.parent
OGPROXY = REPO / ".venv" / "bin" / "ogproxy"
SECRET = "bench-secret-0123456789abcdef"
READY_TIMEOUT_S = 30.0

T = TypeVar("T")

CARD = {
    "title": "Hello, wörld & friends 🚀",
    "subtitle": "Marcus Chen · 8 min read",
    "template": "gradient",
}


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A running ``ogproxy serve``; build signed URLs with :meth:`url`."""

    proc: subprocess.Popen[bytes]
    port: int
    cache_dir: Path
    log_path: Path
    log_file: IO[bytes]
    spawned_at: float  # time.monotonic()
    ready_at: float = 0.0
    profiles_left: int = 0  # Chromium profile folders left behind at stop (then removed)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}/og.png"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, params: dict[str, str]) -> str:
        return sign_url(self.base, SECRET, params)


def start_server(
    cache_dir: str | Path,
    port: int,
    extra_env: dict[str, str] | None = None,
    cpus: str | None = None,
) -> Server:
    """Spawn ``ogproxy serve`` in its own process group and wait for /healthz to answer 200.

    Inherited ``OGPROXY_*`` variables are dropped so that only ``extra_env`` configures
    it: otherwise the defaults a user runs (info logging, the access log on). ``cpus``
    (``taskset -c``, e.g. "0") pins it and everything it starts to those cores. The log
    goes to ``<cache_dir parent>/ogproxy-<port>.log``. Raises RuntimeError
    with the log tail if it is not ready within 30 s (the process is stopped first).
    """
    cache_dir = Path(cache_dir)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = cache_dir.parent / f"ogproxy-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OGPROXY_")}
    env["OGPROXY_SECRET"] = SECRET
    env.update(extra_env or {})
    cmd = [
        *(["taskset", "-c", cpus] if cpus else []),
        str(OGPROXY), "serve", "--host", HOST, "--port", str(port),
        "--cache-dir", str(cache_dir),
    ]  # fmt: skip
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by stop_server
    spawned_at = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=cache_dir.parent,
    )  # fmt: skip
    server = Server(proc, port, cache_dir, log_path, log_file, spawned_at)
    try:
        _wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def _wait_ready(server: Server) -> None:
    url = f"http://{HOST}:{server.port}/healthz"
    remaining = server.spawned_at + READY_TIMEOUT_S - time.monotonic()
    wait_http(server.proc, url, server.log_path, remaining)
    server.ready_at = time.monotonic()


def stop_server(server: Server) -> None:
    """Stop the server gracefully (SIGTERM lets it close Chromium), forcefully if need be.

    Chromium profile folders (``--user-data-dir``) that its browsers leave behind are
    removed; how many there were is kept in ``server.profiles_left``.
    """
    profiles = _profile_dirs(server.pid)
    try:
        stop_tree(server.proc)
    finally:
        server.log_file.close()
        left = [d for d in profiles if d.exists()]
        server.profiles_left = len(left)
        for folder in left:
            shutil.rmtree(folder, ignore_errors=True)


def _profile_dirs(root: int) -> list[Path]:
    """The temporary ``--user-data-dir`` folders of the Chromium processes below ``root``."""
    found = set()
    tmp = Path(tempfile.gettempdir())
    for pid in procfs.descendants(root):
        for arg in procfs.args(pid):
            if arg.startswith("--user-data-dir="):
                folder = Path(arg.split("=", 1)[1])
                if folder.parent == tmp and folder.name.startswith("playwright_"):
                    found.add(folder)
    return sorted(found)


@dataclass
class Caddy:
    proc: subprocess.Popen[bytes]
    port: int
    log_file: IO[bytes]


def start_caddy(root: Path, port: int, workdir: Path) -> Caddy:
    """Caddy's file_server on 127.0.0.1:port over ``root``; no admin, no HTTPS, no logs."""
    caddyfile = workdir / "Caddyfile"
    caddyfile.write_text(
        "{\n"
        "\tadmin off\n"
        "\tauto_https off\n"
        "\tlog {\n\t\toutput discard\n\t}\n"
        "}\n"
        f"http://{HOST}:{port} {{\n"
        f"\tbind {HOST}\n"
        f"\troot * {root}\n"
        "\tfile_server\n"
        "}\n"
    )
    env = dict(os.environ)
    # Keep Caddy's data/config (autosave, storage) inside the bench folder.
    env.update(HOME=str(workdir), XDG_DATA_HOME=str(workdir), XDG_CONFIG_HOME=str(workdir))
    log_file = open(workdir / "caddy.log", "ab")  # noqa: SIM115 - closed by stop_caddy
    proc = subprocess.Popen(
        ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=workdir,
    )  # fmt: skip
    caddy = Caddy(proc, port, log_file)
    try:
        wait_http(proc, f"http://{HOST}:{port}/card.png", workdir / "caddy.log", 15)
    except BaseException:
        stop_caddy(caddy)
        raise
    return caddy


def stop_caddy(caddy: Caddy) -> None:
    try:
        stop_tree(caddy.proc, grace_s=5)
    finally:
        caddy.log_file.close()


# --------------------------------------------------------------------------- HTTP client


@dataclass
class FetchStats:
    done: int = 0
    ok: int = 0
    misses: int = 0  # X-Cache: MISS
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> int:
        return self.done - self.ok


def fetch_urls(
    urls: Iterable[str], concurrency: int, deadline: float, timeout_s: float = 30.0
) -> FetchStats:
    """GET ``urls`` with ``concurrency`` workers until they run out or ``deadline``
    (time.monotonic()) passes; requests in flight at the deadline are finished."""
    return asyncio.run(_fetch(iter(urls), concurrency, deadline, timeout_s))


async def _fetch(
    urls: Iterator[str], concurrency: int, deadline: float, timeout_s: float
) -> FetchStats:
    stats = FetchStats()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            url = next(urls, None)
            if url is None:
                return
            t0 = time.perf_counter()
            try:
                resp = await client.get(url)
            except httpx.HTTPError:
                stats.exceptions += 1
                stats.done += 1
                continue
            stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            stats.done += 1
            stats.statuses[resp.status_code] += 1
            if resp.status_code == 200:
                stats.ok += 1
                stats.misses += resp.headers.get("x-cache") == "MISS"

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    stats.elapsed_s = time.monotonic() - started
    return stats


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def get_card(server: Server, url: str, client: httpx.Client) -> httpx.Response:
    """GET a card that must answer 200; otherwise raise with the server's log tail."""
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"GET {url}: {exc!r}\n" + tail(server.log_path)) from exc
    if resp.status_code != 200:
        raise RuntimeError(
            f"GET {url}: {resp.status_code} {resp.text[:200]}\n" + tail(server.log_path)
        )
    return resp


def warm(server: Server, params: dict[str, str]) -> tuple[str, bytes]:
    """GET a card twice; the second answer must be a 200 with X-Cache: HIT."""
    url = server.url(params)
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        first = get_card(server, url, client)
        second = get_card(server, url, client)
    if second.headers.get("x-cache") != "HIT":
        raise RuntimeError(f"second GET of {url} says X-Cache: {second.headers.get('x-cache')}")
    if second.content != first.content:
        raise RuntimeError(f"{url}: the hit differs from the miss")
    return url, second.content


def _titles(prefix: str, start: int = 0) -> Iterator[dict[str, str]]:
    n = start
    while True:
        yield {"title": f"{prefix} {n}", "subtitle": "Serve bench", "template": "gradient"}
        n += 1


def _take(items: Iterator[T], n: int) -> Iterator[T]:
    """The next ``n`` items (fewer if ``items`` runs out), consumed lazily."""
    for _ in range(n):
        try:
            yield next(items)
        except StopIteration:
            return


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


# --------------------------------------------------------------------------- scenarios


def startup_time(
    tmpdir: str | Path, runs: int = 3, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Spawn -> first 200 on /healthz, and spawn -> first rendered card (cold, fresh cache)."""
    t_start = time.monotonic()
    ready: list[float] = []
    first_card: list[float] = []
    render: list[float] = []
    stops: list[float] = []
    leftovers: list[int] = []
    for i in range(runs):
        server = start_server(
            Path(tmpdir) / "startup" / f"run{i}" / "cache", free_port(), extra_env
        )
        try:
            ready.append(server.ready_at - server.spawned_at)
            url = server.url({"title": f"Startup card {i}", "template": "gradient"})
            with httpx.Client(timeout=30.0, trust_env=False) as client:
                get_card(server, url, client)
            now = time.monotonic()
            first_card.append(now - server.spawned_at)
            render.append(now - server.ready_at)
        finally:
            t0 = time.monotonic()
            stop_server(server)
            stops.append(time.monotonic() - t0)
            leftovers.append(server.profiles_left)
    return _round({
        "start_to_ready_s_p50": percentile(ready, 50),
        "start_to_ready_s_max": max(ready),
        "first_card_s_p50": percentile(first_card, 50),  # from spawn
        "first_card_after_ready_s_p50": percentile(render, 50),
        "stop_s_max": max(stops),
        "profile_dirs_left_per_run": max(leftovers),
        "runs": runs,
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


def hits_vs_caddy(
    tmpdir: str | Path, quick: bool = False, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """wrk -t2 -c64 on one warm ogproxy card, then on Caddy serving the same bytes."""
    t_start = time.monotonic()
    work = Path(tmpdir) / "hits_vs_caddy"
    duration = 5 if quick else 15
    server = start_server(work / "cache", free_port(), extra_env)
    try:
        url, png = warm(server, CARD)
        root = work / "static"
        root.mkdir(parents=True, exist_ok=True)
        (root / "card.png").write_bytes(png)
        og = run_wrk(url, 2, 64, duration)
        # The same card, its parameters in another order: a URL a user may well write.
        respelled = respell(url)
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            assert client.get(respelled).content == png
        other = run_wrk(respelled, 2, 64, duration)
    finally:
        stop_server(server)
    time.sleep(1)
    caddy = start_caddy(root, free_port(), work)
    try:
        caddy_url = f"http://{HOST}:{caddy.port}/card.png"
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            same = client.get(caddy_url).content == png
        if not same:
            raise RuntimeError("Caddy's body differs from ogproxy's")
        cd = run_wrk(caddy_url, 2, 64, duration)
    finally:
        stop_caddy(caddy)
    return _round({
        "ogproxy_rps": og["rps"],
        "ogproxy_p50_ms": og["p50_ms"],
        "ogproxy_p99_ms": og["p99_ms"],
        "ogproxy_requests": og["requests"],
        "caddy_rps": cd["rps"],
        "caddy_p50_ms": cd["p50_ms"],
        "caddy_p99_ms": cd["p99_ms"],
        "caddy_errors": cd["errors"],
        "ratio_rps": og["rps"] / cd["rps"] if cd["rps"] else 0.0,
        "respelled_rps": other["rps"],
        "respelled_ratio": other["rps"] / og["rps"] if og["rps"] else 0.0,
        "errors": og["errors"] + other["errors"],
        "png_bytes": len(png),
        "bodies_equal": int(same),
        "duration_s": duration,
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


def respell(url: str) -> str:
    """``url`` with its parameters (all but the signature) in reverse order."""
    head, query = url.split("?", 1)
    pairs = query.split("&")
    sig = [p for p in pairs if p.startswith("sig=")]
    rest = [p for p in pairs if not p.startswith("sig=")]
    return head + "?" + "&".join([*reversed(rest), *sig])


# Which part of the machine a process is, by its command line: Chromium's processes by
# their --type, Playwright's driver (node), and ogproxy itself.
def _kind(cmdline: str) -> str:
    if "--type=renderer" in cmdline:
        return "chromium renderer"
    if "--type=gpu-process" in cmdline:
        return "chromium gpu"
    if "--type=" in cmdline:
        return "chromium utility"
    if "chrom" in cmdline:
        return "chromium browser"
    if "node" in cmdline or "playwright" in cmdline:
        return "playwright driver"
    return "python (ogproxy)"


def cpu_by_kind(root: int) -> dict[str, float]:
    """CPU seconds used so far by ``root`` and its descendants, by kind of process.

    (A process that exits takes its time with it: read before it ends.)"""
    totals: dict[str, float] = {}
    for pid in [root, *procfs.descendants(root)]:
        info = procfs.stat(pid)
        if info is not None:
            kind = _kind(procfs.cmdline(pid))
            totals[kind] = totals.get(kind, 0.0) + info.cpu_seconds
    return totals


def core_scaling(
    tmpdir: str | Path, quick: bool = False, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Distinct misses/s with the server on one core, then on two (``taskset``), at the
    default settings; on two, the CPU each card costs, by process kind."""
    t_start = time.monotonic()
    duration = 8 if quick else 20
    out: dict[str, float] = {}
    cores = config.cores()
    for label, cpus in (("1core", "0"), ("2cores", "0,1" if cores > 1 else "0")):
        server = start_server(
            Path(tmpdir) / f"scaling-{label}" / "cache", free_port(), extra_env, cpus
        )
        try:
            warm(server, CARD)
            before = cpu_by_kind(server.pid)
            urls = (server.url(p) for p in _take(_titles(f"Scaling {label}"), 5000))
            misses = fetch_urls(urls, 2 * cores, time.monotonic() + duration)
            after = cpu_by_kind(server.pid)
        finally:
            stop_server(server)
        out[f"misses_per_s_{label}"] = misses.ok / misses.elapsed_s if misses.elapsed_s else 0.0
        out[f"miss_p50_ms_{label}"] = percentile(misses.latencies_ms, 50)
        out[f"errors_{label}"] = misses.errors
        if label == "2cores" and misses.ok:
            for kind in sorted(set(before) | set(after)):
                used = after.get(kind, 0.0) - before.get(kind, 0.0)
                out[f"cpu_ms_per_card {kind}"] = 1000 * used / misses.ok
            out["cpu_ms_per_card"] = (
                1000 * sum(after.get(k, 0.0) - before.get(k, 0.0) for k in after) / misses.ok
            )
    one, two = out["misses_per_s_1core"], out["misses_per_s_2cores"]
    out["scaling"] = two / one if one else 0.0
    out["elapsed_s"] = time.monotonic() - t_start
    return _round(out)


def mixed_load(
    tmpdir: str | Path, quick: bool = False, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Hit latency alone, then while 4 concurrent distinct misses render (<= 400)."""
    t_start = time.monotonic()
    duration = 5 if quick else 12
    server = start_server(Path(tmpdir) / "mixed" / "cache", free_port(), extra_env)
    try:
        url, _ = warm(server, CARD)
        alone = run_wrk(url, 1, 32, duration)
        misses_urls = (server.url(p) for p in _take(_titles("Mixed load card"), 400))
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(fetch_urls, misses_urls, 4, time.monotonic() + duration)
            under = run_wrk(url, 1, 32, duration)
            misses = future.result(timeout=duration + 60)
    finally:
        stop_server(server)
    return _round({
        "hit_rps_alone": alone["rps"],
        "hit_p50_ms_alone": alone["p50_ms"],
        "hit_p99_ms_alone": alone["p99_ms"],
        "hit_rps_under_renders": under["rps"],
        "hit_p50_ms_under_renders": under["p50_ms"],
        "hit_p99_ms_under_renders": under["p99_ms"],
        "misses_done": misses.done,
        "misses_rendered": misses.misses,
        "miss_p50_ms": percentile(misses.latencies_ms, 50),
        "miss_p99_ms": percentile(misses.latencies_ms, 99),
        "miss_errors": misses.errors,
        "renders_per_s": misses.ok / misses.elapsed_s if misses.elapsed_s else 0.0,
        "hit_errors": alone["errors"] + under["errors"],
        "duration_s": duration,
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


# An untrusted card that asks for as much as it can while it renders: fetch() and images,
# refused one by one (no asset origin is allowed), each a request the renderer must settle.
FLOOD = (
    "<h1>{n}</h1><script>"
    "for (let i = 0; i < 20000; i++) fetch('https://flood.invalid/' + i).catch(() => {{}});"
    "for (let i = 0; i < 2000; i++) new Image().src = 'https://flood.invalid/i' + i;"
    "</script>"
)


def untrusted_flood(
    tmpdir: str | Path, quick: bool = False, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Built-in misses one at a time, alone, then while untrusted cards that flood the
    renderer with refused requests render back to back: what one hostile card costs the
    others. Reports the flood cards' own answers too (they must not be 500s)."""
    t_start = time.monotonic()
    n = 20 if quick else 60
    server = start_server(Path(tmpdir) / "flood" / "cache", free_port(), extra_env)
    try:
        warm(server, CARD)
        alone = fetch_urls(
            (server.url(p) for p in _take(_titles("Flood alone"), n)), 1, time.monotonic() + 120
        )
        done = threading.Event()
        floods = (
            server.url({"html": FLOOD.format(n=i)})
            for i in itertools.takewhile(lambda _: not done.is_set(), itertools.count())
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            flooding = pool.submit(fetch_urls, floods, 2, time.monotonic() + 300, 60.0)
            time.sleep(1)  # the flood under way
            under = fetch_urls(
                (server.url(p) for p in _take(_titles("Flood under"), n)), 1, time.monotonic() + 120
            )
            done.set()
            flood = flooding.result(timeout=400)
    finally:
        stop_server(server)
    p50_alone, p50_under = percentile(alone.latencies_ms, 50), percentile(under.latencies_ms, 50)
    return _round({
        "builtin_miss_p50_ms_alone": p50_alone,
        "builtin_miss_p50_ms_under_flood": p50_under,
        "builtin_miss_p90_ms_under_flood": percentile(under.latencies_ms, 90),
        "slowdown": p50_under / p50_alone if p50_alone else 0.0,
        "builtin_errors": alone.errors + under.errors,
        "flood_cards": flood.done,
        "flood_p50_ms": percentile(flood.latencies_ms, 50),
        "flood_500s": flood.statuses.get(500, 0) + flood.exceptions,
        "flood_statuses": ",".join(f"{k}:{v}" for k, v in sorted(flood.statuses.items())),
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


def load_zero_errors(
    tmpdir: str | Path,
    requests: int = 20000,
    connections: int = 64,
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """At least ``requests`` GETs (wrk -t2) cycling over 20 warm cards; count the errors.

    Each wrk thread stops after its share; wrk is then interrupted (SIGINT makes it
    report at once), so the run takes as long as the requests need (capped at 120 s).
    """
    t_start = time.monotonic()
    threads = min(2, connections)  # wrk needs at least one connection per thread
    work = Path(tmpdir) / "load"
    markers = work / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    server = start_server(work / "cache", free_port(), extra_env)
    try:
        urls = [server.url(p) for p in _take(_titles("Load card"), 20)]
        warmed = fetch_urls(urls, 4, time.monotonic() + 60)
        if warmed.ok != len(urls):
            raise RuntimeError(f"pre-warm: {dict(warmed.statuses)}, {warmed.exceptions} failed")
        prefix = f"http://{HOST}:{server.port}"
        paths = ",\n".join(f"   [==[{u.removeprefix(prefix)}]==]" for u in urls)
        script = work / "cycle.lua"
        script.write_text(cycle_script(paths, -(-requests // threads), markers))
        res = wrk_until_markers(prefix + "/", threads, connections, script, markers, 120)
    finally:
        stop_server(server)
    return _round({
        "total_requests": res["requests"],
        "rps": res["rps"],
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
        "errors": res["errors"],
        "non_2xx": res["non_2xx"],
        "socket_errors": res["socket_errors"],
        "requested": requests,
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


def process_memory_mb(root: int) -> tuple[float, float, bool]:
    """``(pss_or_rss_mb, rss_mb, is_pss)`` summed over ``root`` and its descendants."""
    pss_kb = rss_kb = 0
    is_pss = True
    for pid in [root, *procfs.descendants(root)]:
        rss = procfs.kib(pid, "VmRSS")
        pss = procfs.kib(pid, "Pss", "smaps_rollup")
        if rss is None:
            continue  # gone meanwhile
        rss_kb += rss
        if pss is None:
            is_pss = False
        pss_kb += pss if pss is not None else rss
    return pss_kb / 1024, rss_kb / 1024, is_pss


def memory_growth(
    tmpdir: str | Path,
    quick: bool = False,
    n: int | None = None,
    budget_s: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Memory of the server tree after 100 distinct renders and after ``n`` in all
    (default 5000; quick 1000), rendered over HTTP 4 at a time.

    Bounded by ``budget_s`` of rendering (default 8 minutes; quick 15 s, which on two
    cores stops well short of 1000): no new render starts after it, and ``n`` in the
    result is the number reached (``completed`` says whether the target was).
    """
    t_start = time.monotonic()
    target = n if n is not None else (1000 if quick else 5000)
    budget = budget_s if budget_s is not None else (15.0 if quick else 480.0)
    server = start_server(Path(tmpdir) / "memory" / "cache", free_port(), extra_env)
    try:
        deadline = time.monotonic() + budget
        titles = (server.url(p) for p in _titles("Memory card"))
        first = fetch_urls(_take(titles, 100), 4, deadline)
        time.sleep(0.5)
        mem_100, rss_100, pss_100 = process_memory_mb(server.pid)
        rest = fetch_urls(_take(titles, target - 100), 4, deadline)
        time.sleep(0.5)
        mem_n, rss_n, pss_n = process_memory_mb(server.pid)
        procs = 1 + sum(running(pid) for pid in procfs.descendants(server.pid))
    finally:
        stop_server(server)
    done = first.ok + rest.ok
    return _round({
        "rss_mb_after_100": mem_100,
        "rss_mb_after_N": mem_n,
        "n": done,
        "ratio": mem_n / mem_100 if mem_100 else 0.0,
        "renders_per_s": done / (first.elapsed_s + rest.elapsed_s),
        "plain_rss_mb_after_100": rss_100,
        "plain_rss_mb_after_N": rss_n,
        "is_pss": int(pss_100 and pss_n),
        "render_errors": first.errors + rest.errors,
        "processes": procs,
        "target": target,
        "completed": int(done >= target),
        "elapsed_s": time.monotonic() - t_start,
    })  # fmt: skip


# --------------------------------------------------------------------------- main


def main() -> int:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ogproxy-serve-bench-") as tmp:
        scenarios: dict[str, Callable[[], dict[str, float]]] = {
            "startup_time": lambda: startup_time(tmp, runs=3),
            "hits_vs_caddy": lambda: hits_vs_caddy(tmp, quick=True),
            "mixed_load": lambda: mixed_load(tmp, quick=True),
            "core_scaling": lambda: core_scaling(tmp, quick=True),
            "untrusted_flood": lambda: untrusted_flood(tmp, quick=True),
            "load_zero_errors": lambda: load_zero_errors(tmp, requests=20000),
            "memory_growth": lambda: memory_growth(tmp, quick=True),
        }
        only = set(sys.argv[1:])
        for name, run in scenarios.items():
            if only and name not in only:
                continue
            results[name] = run()
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
