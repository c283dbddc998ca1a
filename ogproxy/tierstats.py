"""What each cache tier (memory, disk, object store) answered, and how long it took."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lookup = Literal["hit", "miss", "error"]  # what a tier answered


@dataclass
class TierStats:
    """Plain counters, read by /metrics at scrape time (no metrics library on the hit path)."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    rejected: int = 0  # stored cards that failed their check (integrity.py) and were dropped
    seconds: float = 0.0  # total time spent in lookups
    lookups: int = 0  # lookups that were timed

    def count(self, result: Lookup, seconds: float | None = None) -> None:
        if result == "hit":
            self.hits += 1
        elif result == "miss":
            self.misses += 1
        else:
            self.errors += 1
        if seconds is not None:
            self.seconds += seconds
            self.lookups += 1
