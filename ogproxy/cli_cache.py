"""``ogproxy cache stats|prune|clear``: the disk cache, and with --store the object store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from .cli_options import InvalidInput, setting_option
from .config import DEFAULT_CACHE_DIR, parse_size
from .errors import ConfigError

# The cache commands work on a cache dir without building Settings: give them its default.
cache_dir_option = setting_option("cache_dir", default=DEFAULT_CACHE_DIR)
store_option = setting_option("store")


@click.group()
def cache() -> None:
    """Inspect or trim the render cache."""


def _open_disk(cache_dir: Path) -> Any:
    from .disktier import DiskTier

    if not cache_dir.is_dir():
        raise click.ClickException(f"no cache at {cache_dir}")
    # The server's limit kept; no seal: the cache commands read and write no card.
    return DiskTier(cache_dir, size_limit=None, seal=None)


def _on_remote(store_url: str, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``job(tier)`` on the object store at ``store_url`` (AWS_* from the environment)."""
    import asyncio
    import os

    from .objectstore import ObjectTier

    async def run() -> Any:
        return await job(await ObjectTier.open(store_url, os.environ, seal=None))

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the store's own errors: unreachable, forbidden, ...
        raise click.ClickException(f"object store {store_url}: {exc}") from None


@cache.command("stats")
@cache_dir_option
@store_option
def cache_stats(cache_dir: Path, store: str | None) -> None:
    """Entries and bytes in the cache (and in the object store, with --store)."""
    from . import objectstore

    if cache_dir.is_dir() or not store:
        disk = _open_disk(cache_dir)
        try:
            info = disk.usage()
        finally:
            disk.close()
        click.echo(
            f"{info['directory']}: {info['entries']} entries, "
            f"{int(info['bytes']) / 2**20:.1f} MiB of {int(info['size_limit']) / 2**20:.0f} MiB"
        )
    if store:
        count, size = _on_remote(store, objectstore.usage)
        click.echo(f"{store}: {count} objects, {size / 2**20:.1f} MiB")


@cache.command("clear")
@cache_dir_option
@store_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def cache_clear(cache_dir: Path, store: str | None, yes: bool) -> None:
    """Delete every cached image (they are rendered again on demand).

    With --store, the objects under that prefix too: the whole fleet renders them again.
    """
    from . import objectstore

    where = f"{cache_dir} and {store} (shared by the fleet)" if store else str(cache_dir)
    if not yes:
        click.confirm(f"Delete every cached image in {where}?", abort=True)
    if cache_dir.is_dir() or not store:
        disk = _open_disk(cache_dir)
        try:
            click.echo(f"removed {disk.clear()} entries")
        finally:
            disk.close()
    if store:
        click.echo(f"removed {_on_remote(store, objectstore.clear)} objects from {store}")


@cache.command("prune")
@cache_dir_option
@store_option
@click.option("--to", "target", default=None, help="Disk cache size to shrink to, e.g. 500MB.")
@click.option(
    "--store-to",
    "store_target",
    default=None,
    help="Object store size to shrink the prefix to, oldest first, e.g. 50GB (needs --store).",
)
def cache_prune(
    cache_dir: Path, store: str | None, target: str | None, store_target: str | None
) -> None:
    """Evict the oldest images until the cache is at most --to (the bucket --store-to).

    For a bucket, lifecycle rules that expire old objects are the lasting way (README).
    """
    from . import objectstore

    if target is None and store_target is None:
        raise click.UsageError("give --to SIZE (disk) and/or --store-to SIZE (object store)")
    if store_target is not None and not store:
        raise click.UsageError("--store-to needs --store s3://bucket/prefix (or OGPROXY_STORE)")
    try:
        to_bytes = parse_size(target, "--to") if target is not None else None
        store_bytes = parse_size(store_target, "--store-to") if store_target else None
    except ConfigError as exc:  # the message already names --to or --store-to
        raise InvalidInput(str(exc)) from None
    if to_bytes is not None:
        disk = _open_disk(cache_dir)
        try:
            removed = disk.prune(to_bytes)
            click.echo(
                f"removed {removed} entries; {int(disk.usage()['bytes']) / 2**20:.1f} MiB left"
            )
        finally:
            disk.close()
    if store and store_bytes is not None:
        removed = _on_remote(store, lambda tier: objectstore.prune(tier, store_bytes))
        click.echo(f"removed {removed} objects from {store}")
