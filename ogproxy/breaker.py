"""A circuit breaker: after repeated failures, stop calling a dependency for a while.

A dead object store would otherwise add its whole timeout to every miss. Once open, one
caller per cool-down is let through as a probe; its success closes the breaker again.
"""

from __future__ import annotations

import time


class Breaker:
    def __init__(self, failures: int = 5, cooldown: float = 5.0) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.failures = 0  # consecutive
        self.opened = 0  # times it opened, for /metrics
        self._retry_at: float | None = None  # None while closed

    @property
    def is_open(self) -> bool:
        return self._retry_at is not None

    def allow(self) -> bool:
        """May a call go through now? While open, one probe per cool-down does."""
        if self._retry_at is None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        # The probe's own failure or success moves the state on; until then, and even
        # if its result is never reported, the others wait one more cool-down.
        self._retry_at = now + self.cooldown
        return True

    def success(self) -> None:
        self.failures = 0
        self._retry_at = None

    def failure(self) -> None:
        self.failures += 1
        if self._retry_at is not None or self.failures >= self.threshold:
            if self._retry_at is None:
                self.opened += 1
            self._retry_at = time.monotonic() + self.cooldown
