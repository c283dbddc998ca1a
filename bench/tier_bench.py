"""Hit latency by cache tier: memory, disk, and the object store (a real SeaweedFS).

One real card (the shipped gradient template, rendered once) is stored under N keys.
Each tier is then read through ``Store`` as the server reads it: memory hits from a warm
store, disk hits from a store with no memory, object-store hits from a store with an
empty disk (each key once: a hit is promoted to disk, so it is read once from the
bucket). SeaweedFS runs on loopback, so the object-store figure is the client and
protocol cost; a remote bucket adds its network round trip (R2/S3: typically 10-50 ms).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root, for tests.support

from ogproxy.batch import Job, render_jobs  # noqa: E402
from ogproxy.config import Settings  # noqa: E402
from ogproxy.integrity import CardSeal  # noqa: E402
from ogproxy.objectstore import ObjectTier  # noqa: E402
from ogproxy.store import Store  # noqa: E402
from tests.support.s3server import Weed  # noqa: E402  (the tests' SeaweedFS runner)

BUCKET = "ogproxy-bench"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_ms": round(pick(0.5) * 1000, 3), "p99_ms": round(pick(0.99) * 1000, 3)}


async def _timed(keys: list[str], read: Any) -> dict[str, float]:
    samples = []
    for key in keys:
        started = time.perf_counter()
        value = await read(key)
        samples.append(time.perf_counter() - started)
        assert value is not None, f"{key[:12]}: not a hit"
    return _percentiles(samples)


async def _card(tmp: Path) -> bytes:
    settings = Settings(
        dev=True,
        dev_secret_file=tmp / "dev-secret",
        cache_dir=tmp / "render-cache",
        pages=1,
        browsers=1,
    )
    job = Job(0, {"title": "How we render a card once, for good", "name": "card"})
    summary = await render_jobs([job], tmp / "card", settings)
    assert not summary.failed, summary.failed
    return (tmp / "card" / "card.png").read_bytes()


async def _measure(weed: Weed, tmp: Path, n: int) -> dict[str, Any]:
    png = await _card(tmp)
    keys = [hashlib.sha256(f"tier bench {i}".encode()).hexdigest() for i in range(n)]
    seal = CardSeal(["tier-bench-secret-0123456789"])
    tier = await ObjectTier.open(f"s3://{BUCKET}/run-{os.getpid()}", weed.env(), seal)
    await asyncio.gather(*(tier.put(key, "png", png) for key in keys))
    warm = Store(tmp / "disk", size_limit=None, memory_bytes=256 * 2**20, seal=seal)
    for key in keys:
        await warm.put(key, "png", png)
    cold = Store(tmp / "disk", size_limit=None, memory_bytes=0, seal=seal)
    wiped = Store(tmp / "wiped", size_limit=None, memory_bytes=0, seal=seal, remote=tier)

    async def from_disk(key: str) -> bytes | None:
        return await cold.get(key, "png")

    async def from_bucket(key: str) -> bytes | None:
        return await wiped.get(key, "png")

    async def from_memory(key: str) -> bytes | None:
        return warm.get_memory(key)

    result = {
        "card_bytes": len(png),
        "n": n,
        "memory": await _timed(keys, from_memory),
        "disk": await _timed(keys, from_disk),
        "object_store": await _timed(keys, from_bucket),
    }
    assert tier.stats.hits == n and wiped.tiers["disk"].hits == 0
    for store in (warm, cold, wiped):
        store.close()
    return result


def run(tmp: Path, quick: bool) -> dict[str, Any]:
    weed = Weed(tmp / "weed")
    weed.start()
    try:
        weed.create_bucket(BUCKET)
        return asyncio.run(_measure(weed, tmp, 50 if quick else 300))
    finally:
        weed.stop()


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(run(Path(folder), "--quick" in sys.argv), indent=2))
