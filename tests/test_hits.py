"""The repeat-hit fast path cannot be grown by respelling one public URL."""

from __future__ import annotations

import re
import socket
import tracemalloc
from pathlib import Path

from ogproxy import procfs
from ogproxy.hits import DEFAULT_SPELLING_BYTES, KnownQueries, Spellings
from tests.support.cards import SECRET, signed
from tests.support.servers import serve

TITLE = "One public card, respelled fifteen thousand ways " * 3  # ~150 characters
SPELLINGS = 15_000


def _respelled(query: str, i: int) -> str:
    """The i-th spelling of ``query``: which title characters are percent-escaped, and
    how many ``&`` separate the parameters, both taken from the bits of ``i``."""
    head, _, rest = query.partition("title=")
    value, _, tail = rest.partition("&")
    chars = []
    for n, ch in enumerate(re.findall(r"%[0-9A-F]{2}|.", value)):
        escaped = ch.isalpha() and (i >> (n % 15)) & 1
        chars.append(f"%{ord(ch):02X}" if escaped else ch)
    return f"{head}title={''.join(chars)}{'&' * (1 + (i >> 15) % 4)}{tail}"


def _get_many(port: int, path: str, queries: list[str]) -> list[bytes]:
    """Status lines of HEADs (the full request path, without the image bytes) sent
    pipelined, 100 at a time, on one connection."""
    statuses: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        reader = conn.makefile("rb")
        for start in range(0, len(queries), 100):
            batch = queries[start : start + 100]
            conn.sendall(
                b"".join(f"HEAD {path}?{q} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for q in batch)
            )
            for _ in batch:
                statuses.append(reader.readline())
                while reader.readline() not in (b"\r\n", b""):
                    pass
    return statuses


def test_fifteen_thousand_spellings_of_one_url_do_not_grow_memory(tmp_path: Path) -> None:
    with serve(tmp_path, "--no-access-log", env={"OGPROXY_SECRET": SECRET}, fake=True) as server:
        port = int(server.base.rsplit(":", 1)[1])
        url = signed({"title": TITLE, "template": "minimal"}, base=server.base + "/og.png")
        query = url.split("?", 1)[1]
        spellings = sorted({_respelled(query, i) for i in range(1, SPELLINGS + 1)})
        assert len(spellings) == SPELLINGS and query not in spellings
        # Warm up: the card rendered and a first batch served, so the baseline holds
        # everything that serving a hit needs.
        assert _get_many(port, "/og.png", [query, *spellings[:500]])[-1].startswith(b"HTTP/1.1 200")
        before = procfs.kib(server.proc.pid, "VmRSS")
        statuses = _get_many(port, "/og.png", spellings)
        after = procfs.kib(server.proc.pid, "VmRSS")
    assert {s.split()[1] for s in statuses} == {b"200"}  # every spelling verifies...
    assert before is not None and after is not None
    assert after - before < 3 * 1024, f"server RSS grew {after - before} KiB"  # ...for free


def test_known_queries_are_bounded_by_bytes() -> None:
    known = KnownQueries(max_bytes=100_000)
    for i in range(1000):
        known.remember("/og.png", b"q%d" % i + b"x" * 4000, f"k{i}")
    assert known.bytes <= 100_000 and 0 < len(known) < 30
    assert known.get("/og.png", b"q999" + b"x" * 4000) == ("k999", b"image/png")


def test_remembered_spellings_stay_within_their_byte_budget() -> None:
    spellings = Spellings(max_bytes=200_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):
            spellings.put(b"title=%d&" % i + b"x" * 240, b"canonical%d&" % i + b"y" * 240)
            assert spellings.get(b"title=0&" + b"x" * 240) is not None  # in use: kept
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert spellings.bytes <= 200_000 and 100 < len(spellings) < 1000
    assert grown <= 200_000, grown  # the budget counts what the entries really hold
    assert spellings.get(b"title=1&" + b"x" * 240) is None  # the least recently used went
    assert spellings.get(b"title=4999&" + b"x" * 240) == b"canonical4999&" + b"y" * 240
    assert DEFAULT_SPELLING_BYTES <= 2**20
