"""Failing fast while a backend is away: a circuit breaker, and an error log that cannot flood.

Shared by the response cache (its Redis tiers and bus) and the rate limiter (its counter store):
without a breaker, every request would pay a socket timeout for as long as Redis is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed → (`failure_threshold` failures in a row) → open → (`cooldown_s`) → half_open.

    Half-open admits one call, the probe: its success closes the breaker, its failure opens it for
    another cool-down. A probe that never reports (its caller was cancelled) is replaced after
    `cooldown_s`, or the breaker would stay shut for good.

    Use: `if not breaker.allow()`, fail fast; else make the call and report `success()` or
    `failure()`. Meant for one event loop (no locking).
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_on_state_change",
        "_state",
        "_until",
        "cooldown_s",
        "failure_threshold",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        """`on_state_change(old, new)` runs after each transition (for logs or metrics)."""
        if failure_threshold < 1 or not cooldown_s > 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_state_change = on_state_change
        self._failures = 0
        self._state: BreakerState = "closed"
        self._until = 0.0  # open: end of the cool-down; half_open: when the probe counts as lost

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go out now? After a cool-down, True once: that call is the probe."""
        if self._state == "closed":
            return True
        now = self._clock()
        if now < self._until:
            return False
        self._until = now + self.cooldown_s
        self._set_state("half_open")
        return True

    def rejects_now(self) -> bool:
        """`not allow()` without admitting the probe: lets callers refuse before queueing work."""
        return self._state != "closed" and self._clock() < self._until

    def retry_after_s(self) -> float:
        """For Retry-After: the rest of the cool-down while open; otherwise a whole one, which is
        what a failing call (the probe, say) would cost."""
        if self._state == "open":
            return max(0.0, self._until - self._clock())
        return self.cooldown_s

    def success(self) -> None:
        self._failures = 0
        self._set_state("closed")

    def failure(self) -> None:
        self._failures += 1
        # While open, a late failure of a call sent before the breaker opened changes nothing.
        if self._state == "half_open" or (
            self._state == "closed" and self._failures >= self.failure_threshold
        ):
            self._until = self._clock() + self.cooldown_s
            self._set_state("open")

    def _set_state(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old != new and self._on_state_change is not None:
            self._on_state_change(old, new)


class RateLimitedLog:
    """At most one line per topic per `interval_s`, saying how many similar lines were swallowed
    meanwhile, so an outage or a flood of denials cannot flood the log."""

    __slots__ = ("_clock", "_logger", "_topics", "interval_s")

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._topics: dict[str, tuple[float, int]] = {}  # topic -> (last logged, suppressed)

    def warning(self, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, message, *args)

    def log(
        self,
        level: int,
        message: str,
        *args: object,
        topic: str = "",
        extra: Mapping[str, object] | None = None,
    ) -> bool:
        """Log (returns True) or count the line for the topic's next one (returns False)."""
        now = self._clock()
        last, suppressed = self._topics.get(topic, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._topics[topic] = (last, suppressed + 1)
            return False
        self._topics[topic] = (now, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, extra=extra)
        return True
