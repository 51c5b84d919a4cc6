"""Exponential backoff with full jitter: delays stay within [0, min(cap, base * 2**(n-1))]."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floodgate.jobs import backoff_ceiling, backoff_delay


def test_ceiling_doubles_then_caps() -> None:
    ceilings = [backoff_ceiling(n, base_s=1.0, max_s=10.0) for n in range(1, 7)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_huge_delivery_counts_do_not_overflow() -> None:
    assert backoff_ceiling(10_000, base_s=0.5, max_s=300.0) == 300.0


def test_deliveries_start_at_one() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        backoff_ceiling(0, base_s=1.0, max_s=10.0)


@given(
    deliveries=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.001, max_value=60.0),
    cap=st.floats(min_value=0.001, max_value=3600.0),
    unit=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_is_within_bounds(deliveries: int, base: float, cap: float, unit: float) -> None:
    delay = backoff_delay(deliveries, base_s=base, max_s=cap, random_unit=lambda: unit)
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(deliveries - 1, 64))


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(15)
    delays = [
        backoff_delay(4, base_s=1.0, max_s=100.0, random_unit=rng.random) for _ in range(2000)
    ]
    assert max(delays) <= 8.0
    # Full jitter: no floor (unlike "equal jitter"), and the upper part of the range is used.
    assert min(delays) < 0.1
    assert max(delays) > 7.9
    assert 3.5 < sum(delays) / len(delays) < 4.5
