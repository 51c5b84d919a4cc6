"""The circuit breaker opens after repeated failures, probes once after a cool-down, recovers."""

from __future__ import annotations

import logging

import pytest

from floodgate.cache.breaker import CircuitBreaker, RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=1.0, clock=clock)
    assert breaker.allow()
    breaker.failure()
    assert breaker.allow()
    assert not breaker.is_open
    breaker.failure()
    assert breaker.is_open
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.failure()  # probe failed: open for another cool-down
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open
    assert breaker.allow()
    assert breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=1.0)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.allow()


def test_rate_limited_log_counts_what_it_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("floodgate.cache.test"), interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="floodgate.cache.test"):
        assert log.warning("redis down: %s", "x")
        assert not log.warning("redis down: %s", "y")
        assert not log.warning("redis down: %s", "z")
        clock.now += 10
        assert log.warning("redis down: %s", "w")
    assert [r.getMessage() for r in caplog.records] == [
        "redis down: x",
        "redis down: w (2 similar messages suppressed)",
    ]
