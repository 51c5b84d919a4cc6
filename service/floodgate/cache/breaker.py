"""A small circuit breaker and a rate-limited error log for the Redis the cache depends on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed → (N consecutive failures) → open for `cooldown_s` → one probe → closed or open again.

    While open, callers skip the backend at once instead of paying a timeout per request.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_open_until",
        "_probing",
        "cooldown_s",
        "failure_threshold",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._failures >= self.failure_threshold

    def allow(self) -> bool:
        if self._failures < self.failure_threshold:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True  # half-open: exactly one caller probes
        return True

    def success(self) -> None:
        self._failures = 0
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self.failure_threshold:
            self._open_until = self._clock() + self.cooldown_s


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
