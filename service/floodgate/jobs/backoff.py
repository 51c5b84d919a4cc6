"""Retry delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
And Jitter"): a uniform draw from [0, min(cap, base * 2**(n-1))] spreads the retries of jobs that
failed together (a dependency outage) instead of sending them back in synchronised waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_ceiling(deliveries: int, *, base_s: float, max_s: float) -> float:
    """The upper bound of the delay after the `deliveries`-th failed delivery (1-based)."""
    if deliveries < 1:
        raise ValueError(f"deliveries must be >= 1, got {deliveries}")
    # Cap the exponent before computing: 2.0**1100 overflows a float.
    exponent = min(deliveries - 1, 64)
    return float(min(max_s, base_s * 2.0**exponent))


def backoff_delay(
    deliveries: int,
    *,
    base_s: float,
    max_s: float,
    random_unit: Callable[[], float] = random.random,
) -> float:
    """A delay drawn uniformly from [0, backoff_ceiling(deliveries)] ("full jitter")."""
    return random_unit() * backoff_ceiling(deliveries, base_s=base_s, max_s=max_s)
