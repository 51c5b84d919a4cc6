"""Failing fast while a backend is away: a circuit breaker, and an error log that cannot flood.

Shared by the response cache (its Redis tiers and bus) and the rate limiter (its counter store):
without a breaker, every request would pay a socket timeout for as long as Redis is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
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
    """At most one line per `interval_s`, saying how many similar lines were swallowed meanwhile."""

    __slots__ = ("_clock", "_last", "_logger", "_suppressed", "interval_s")

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log (returns True) or count the line for the next one (returns False)."""
        now = self._clock()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return False
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(message, *args)
        return True
