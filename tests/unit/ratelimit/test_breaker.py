"""Circuit breaker state machine (pure logic, fake clock)."""

from __future__ import annotations

import pytest

from floodgate.ratelimit import CircuitBreaker, StoreUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=2.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.on_failure()
    breaker.before_call()
    breaker.on_success()  # a success resets the count
    for _ in range(3):
        breaker.before_call()
        breaker.on_failure()
    assert breaker.state == "open"
    assert breaker.rejects_now()
    with pytest.raises(StoreUnavailable) as caught:
        breaker.before_call()
    assert caught.value.retry_after_s == pytest.approx(2.0)
    clock.now += 2.0
    assert not breaker.rejects_now()
    breaker.before_call()  # the probe
    assert str(breaker.state) == "half_open"
    with pytest.raises(StoreUnavailable):
        breaker.before_call()  # only one probe at a time
    breaker.on_failure()
    assert breaker.state == "open"
    clock.now += 2.0
    breaker.before_call()
    breaker.on_success()
    assert str(breaker.state) == "closed"
    assert not breaker.rejects_now()
