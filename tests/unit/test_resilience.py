"""Circuit breaker (fake clock, no sleeps), the limiter store's use of it, the rate-limited log."""

from __future__ import annotations

import logging

import pytest

from floodgate.ratelimit import Charge, GcraLimit, RedisStore, StoreUnavailable
from floodgate.ratelimit.stores.redis import store_breaker
from floodgate.resilience import BreakerState, CircuitBreaker, RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock, *, threshold: int = 2, cooldown_s: float = 1.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown_s, clock=clock)
    for _ in range(threshold):
        breaker.failure()
    assert breaker.state == "open"
    return breaker


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1.0, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()  # resets the count: two more failures are not three in a row
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_open_rejects_until_the_cool_down_is_over() -> None:
    clock = Clock()
    breaker = opened(clock, cooldown_s=2.0)
    assert breaker.rejects_now()
    assert breaker.retry_after_s() == pytest.approx(2.0)
    clock.now += 1.5
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert not breaker.rejects_now()
    assert breaker.state == "open"  # the peek admitted no probe
    assert breaker.allow()


def test_half_open_admits_one_probe_whose_success_closes() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert breaker.state == "half_open"
    assert not breaker.allow()  # nobody else while it is out
    assert breaker.rejects_now()
    assert breaker.retry_after_s() == pytest.approx(1.0)
    breaker.success()
    assert breaker.state == "closed"
    assert not breaker.rejects_now()
    assert all(breaker.allow() for _ in range(5))


def test_a_failed_probe_opens_for_a_whole_cool_down() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 1.0
    assert breaker.allow()
    clock.now += 0.3
    breaker.failure()  # one failure is enough in half-open
    assert breaker.state == "open"
    clock.now += 0.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_a_cool_down() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 1.0
    assert breaker.allow()  # its caller is cancelled: neither success() nor failure()
    clock.now += 0.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state == "half_open"


def test_a_late_failure_while_open_does_not_extend_the_cool_down() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 0.9
    breaker.failure()  # a call sent before the breaker opened
    clock.now += 0.1
    assert breaker.allow()


def test_reports_each_transition_once() -> None:
    clock = Clock()
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        failure_threshold=2,
        cooldown_s=1.0,
        clock=clock,
        on_state_change=lambda old, new: seen.append((old, new)),
    )
    breaker.success()
    breaker.failure()
    breaker.failure()
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.success()
    breaker.success()
    assert seen == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.parametrize(("threshold", "cooldown_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_rejects_settings_that_cannot_work(threshold: int, cooldown_s: float) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown_s)


CHARGES = [Charge("k", GcraLimit.from_rate(requests=1, period_s=1))]


async def test_the_limiter_store_fails_fast_with_the_remaining_cool_down() -> None:
    clock = Clock()
    store = RedisStore("redis://unused.invalid", breaker=opened(clock, cooldown_s=2.0))
    clock.now += 0.5
    with pytest.raises(StoreUnavailable) as caught:
        await store.acquire(CHARGES)  # refused before queueing; never connects
    assert caught.value.retry_after_s == pytest.approx(1.5)
    clock.now += 1.5
    assert store.breaker.allow()  # someone else's probe is out
    with pytest.raises(StoreUnavailable) as caught:
        await store.acquire_batch([CHARGES])
    assert caught.value.retry_after_s == pytest.approx(2.0)
    assert store.calls == 0


def test_the_limiter_store_breaker_logs_outage_and_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = store_breaker(failure_threshold=3, cooldown_s=2.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="floodgate.ratelimit"):
        for _ in range(3):
            breaker.failure()
        clock.now += 2.0
        assert breaker.allow()
        breaker.success()
    assert [r.getMessage() for r in caplog.records] == [
        "rate-limit store failed 3 times in a row: breaker open for 2.0s",
        "rate-limit store breaker half-open: probing",
        "rate-limit store reachable again: breaker closed",
    ]


def test_rate_limited_log_counts_what_it_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("floodgate.test"), interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="floodgate.test"):
        assert log.warning("redis down: %s", "x")
        assert not log.warning("redis down: %s", "y")
        assert not log.warning("redis down: %s", "z")
        clock.now += 10
        assert log.warning("redis down: %s", "w")
    assert [r.getMessage() for r in caplog.records] == [
        "redis down: x",
        "redis down: w (2 similar messages suppressed)",
    ]


def test_rate_limited_log_keeps_topics_apart_with_their_level_and_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("floodgate.test"), interval_s=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="floodgate.test"):
        assert log.log(logging.INFO, "deny %s", "a", topic="rule-a", extra={"rule": "a"})
        assert log.log(logging.INFO, "deny %s", "b", topic="rule-b", extra={"rule": "b"})
        assert not log.log(logging.INFO, "deny %s", "a", topic="rule-a", extra={"rule": "a"})
        assert log.warning("store down")  # the default topic is its own
        clock.now += 10
        assert log.log(logging.INFO, "deny %s", "a", topic="rule-a", extra={"rule": "a"})
    assert [(r.levelno, r.getMessage(), getattr(r, "rule", None)) for r in caplog.records] == [
        (logging.INFO, "deny a", "a"),
        (logging.INFO, "deny b", "b"),
        (logging.WARNING, "store down", None),
        (logging.INFO, "deny a (1 similar messages suppressed)", "a"),
    ]
