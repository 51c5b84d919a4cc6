"""A circuit breaker: after N failures in a row, stop calling the store for a while, then probe."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from floodgate.ratelimit.gcra import StoreUnavailable

logger = logging.getLogger("floodgate.ratelimit")

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed → (N consecutive failures) → open → (cool-down elapsed) → half-open: one probe call.

    The probe's success closes the breaker; its failure opens it for another cool-down. While open
    (and while the probe is under way) `before_call` raises StoreUnavailable at once, so a dead
    store costs no timeout per request.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._state: BreakerState = "closed"
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until the next probe may run (at least the cool-down when closed)."""
        if self._state == "open":
            return max(0.0, self._opened_at + self.cooldown_s - self._clock())
        return self.cooldown_s

    def rejects_now(self) -> bool:
        """True when a call would be refused right now (cheap check, no state change)."""
        if self._state == "closed":
            return False
        if self._state == "half_open":
            return True
        return self._clock() < self._opened_at + self.cooldown_s

    def before_call(self) -> None:
        """Raise StoreUnavailable unless a call may go out now (after a cool-down: the probe)."""
        if self._state == "closed":
            return
        if self._state == "open" and self._clock() >= self._opened_at + self.cooldown_s:
            self._state = "half_open"
            logger.info("rate-limit store breaker half-open: probing")
            return
        raise StoreUnavailable(
            "rate-limit store circuit breaker is open",
            retry_after_s=max(self.retry_after_s(), 0.001),
        )

    def on_success(self) -> None:
        if self._state != "closed":
            logger.warning("rate-limit store reachable again: breaker closed")
        self._state = "closed"
        self._failures = 0

    def on_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or (
            self._state == "closed" and self._failures >= self.failure_threshold
        ):
            if self._state == "closed":
                logger.warning(
                    "rate-limit store failed %d times in a row: breaker open for %.1fs",
                    self._failures,
                    self.cooldown_s,
                )
            self._state = "open"
            self._opened_at = self._clock()
