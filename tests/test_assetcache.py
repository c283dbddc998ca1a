"""The asset cache on disk: shared bodies, freshness, and damage that costs a fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from ogproxy.assetcache import Asset, AssetCache

pytestmark = pytest.mark.anyio
BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200  # stored as a file by diskcache


async def test_round_trip_and_one_body_for_two_urls(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    await cache.put(Asset("https://a.test/logo.png", "image/png", BODY), fresh_for=600)
    await cache.put(Asset("https://b.test/same.png", "image/png", BODY), fresh_for=0)
    first = await cache.get("https://a.test/logo.png")
    second = await cache.get("https://b.test/same.png")
    assert first is not None and first.fresh and first.asset.body == BODY
    assert second is not None and not second.fresh and second.asset.body == BODY
    assert cache.disk is not None
    assert len([k for k in cache.disk if str(k).startswith("body:")]) == 1
    cache.close()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
async def test_a_damaged_body_is_a_miss(tmp_path: Path, damage: str) -> None:
    cache = AssetCache(tmp_path)
    await cache.put(Asset("https://a.test/logo.png", "image/png", BODY), fresh_for=600)
    cache.close()
    [stored] = list(tmp_path.rglob("*.val"))
    data = stored.read_bytes()
    stored.write_bytes(data[:-100] if damage == "truncate" else data[:500] + b"X" + data[501:])
    again = AssetCache(tmp_path)
    assert await again.get("https://a.test/logo.png") is None
    again.close()


async def test_an_unusable_directory_is_always_a_miss(tmp_path: Path) -> None:
    blocker = tmp_path / "assets"
    blocker.write_text("a file where the directory should be")
    cache = AssetCache(blocker)
    assert cache.disk is None
    await cache.put(Asset("https://a.test/logo.png", "image/png", BODY), fresh_for=600)
    assert await cache.get("https://a.test/logo.png") is None
