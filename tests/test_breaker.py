"""The circuit breaker in front of the object store."""

from __future__ import annotations

import time

from ogproxy.breaker import Breaker


def test_opens_after_consecutive_failures_and_lets_one_probe_through() -> None:
    breaker = Breaker(failures=3, cooldown=0.1)
    for _ in range(2):
        breaker.failure()
    breaker.success()  # not consecutive: stays closed
    for _ in range(2):
        breaker.failure()
    assert breaker.allow() and not breaker.is_open
    breaker.failure()
    assert breaker.is_open and breaker.opened == 1
    assert not breaker.allow()
    time.sleep(0.12)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # the others wait while it runs
    breaker.failure()  # a failed probe opens it for another cool-down at once
    assert breaker.is_open and breaker.opened == 1 and not breaker.allow()
    time.sleep(0.12)
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()


def test_a_lost_probe_does_not_keep_it_shut() -> None:
    breaker = Breaker(failures=1, cooldown=0.05)
    breaker.failure()
    time.sleep(0.06)
    assert breaker.allow()  # a probe whose result never comes back
    time.sleep(0.06)
    assert breaker.allow()  # another gets its turn after a cool-down
