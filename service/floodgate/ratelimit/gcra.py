"""GCRA (generic cell rate algorithm): the decision rule shared by the memory and Redis stores.

The pure algorithm and its types; the stores themselves live in `floodgate.ratelimit.stores`.

One stored number per key, the theoretical arrival time (TAT), in integer microseconds:

* `interval` T = ceil(period / requests): the time one quota unit takes to refill;
* `capacity` C = requests + burst: the units a fresh key may spend at once;
* a request of `cost` c at time `now` is allowed iff max(TAT, now) + c·T - now ≤ C·T, and then
  TAT := max(TAT, now) + c·T.

Guarantee (what the property tests check): over any interval [t1, t2] the units allowed for one key
are at most C + ⌊(t2 - t1) / T⌋. The "+1 at the edge" of the textbook bound is the C-th unit: a key
that is full at t1 spends C units at t1 and one more at every multiple of T after it.

A request is checked against every rule it matches at once and charged all-or-nothing: if any
*enforced* rule denies it, no rule is charged (a rejected request consumes nothing). Shadow rules
never deny; each one is charged only when it would itself have allowed the request, so its counter
simulates enforcement.

All quantities stay exact integers below 2**53 so the Lua implementation (doubles) computes the very
same numbers as this module.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

N = TypeVar("N", int, float)


def ceil_div(a: N, b: N) -> N:
    """⌈a / b⌉, exact for integers (floor division of the negation: no float rounding)."""
    return -(-a // b)


class StoreUnavailable(Exception):
    """The counter store could not be reached (or the circuit breaker is open)."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class GcraLimit:
    """The compiled numbers of one rule."""

    interval_us: int
    capacity: int
    cost: int = 1

    @classmethod
    def from_rate(cls, *, requests: int, period_s: int, burst: int = 0, cost: int = 1) -> GcraLimit:
        period_us = period_s * 1_000_000
        # Rounding the interval up keeps the sustained rate at or below the declared one.
        interval = ceil_div(period_us, requests)
        return cls(interval_us=interval, capacity=requests + burst, cost=cost)

    @property
    def tolerance_us(self) -> int:
        return self.capacity * self.interval_us


class Charge(NamedTuple):
    """One rule's charge against one counter key."""

    key: str
    limit: GcraLimit
    shadow: bool = False


class Outcome(NamedTuple):
    """What one rule decided for one request."""

    allowed: bool
    remaining: int  # quota units left after this decision
    reset_us: int  # until the key's allowance is whole again
    retry_after_us: int  # until this request would be allowed; 0 when allowed


def request_denied(charges: Sequence[Charge], outcomes: Sequence[Outcome]) -> bool:
    """True when an enforced rule denied the request."""
    return any(not o.allowed and not c.shadow for c, o in zip(charges, outcomes, strict=True))


def decide(tats: MutableMapping[str, int], charges: Sequence[Charge], now: int) -> list[Outcome]:
    """Decide one request against `tats` (key → TAT; missing = 0) and charge it all-or-nothing.

    The Lua script of `stores.redis` is a line-by-line transcription of this function.
    """
    if len(charges) == 1:  # the common case, same rules as below without the bookkeeping
        key, limit, _shadow = charges[0]
        interval = limit.interval_us
        tolerance = limit.capacity * interval
        tat = tats.get(key, 0)
        base = tat if tat > now else now
        new = base + limit.cost * interval
        if new - now <= tolerance:
            tats[key] = new
            room = now + tolerance - new
            return [Outcome(True, room // interval if room > 0 else 0, new - now, 0)]
        room = now + tolerance - base
        return [
            Outcome(False, room // interval if room > 0 else 0, base - now, new - now - tolerance)
        ]
    bases: list[int] = []
    news: list[int] = []
    verdicts: list[bool] = []
    denied = False
    for charge in charges:
        limit = charge.limit
        tat = tats.get(charge.key, 0)
        base = tat if tat > now else now
        new = base + limit.cost * limit.interval_us
        allowed = new - now <= limit.capacity * limit.interval_us
        if not allowed and not charge.shadow:
            denied = True
        bases.append(base)
        news.append(new)
        verdicts.append(allowed)
    outcomes: list[Outcome] = []
    for charge, base, new, allowed in zip(charges, bases, news, verdicts, strict=True):
        limit = charge.limit
        tolerance = limit.capacity * limit.interval_us
        state = base
        if allowed and not denied:
            state = new
            tats[charge.key] = new
        room = now + tolerance - state
        remaining = room // limit.interval_us if room > 0 else 0
        retry = 0 if allowed else new - now - tolerance
        outcomes.append(Outcome(allowed, remaining, state - now, retry))
    return outcomes


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class CounterStore(Protocol):
    """Where TATs live. `acquire_batch` decides several requests in order, atomically."""

    @property
    def remote(self) -> bool:
        """True when a call costs a network round trip (worth memoising denials)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers (for readiness probes); never raises."""
        ...

    async def acquire(self, charges: Sequence[Charge]) -> list[Outcome]:
        """Decide and charge one request; raises StoreUnavailable."""
        ...

    async def acquire_batch(
        self, requests: Sequence[Sequence[Charge]], now_us: int | None = None
    ) -> list[list[Outcome]]:
        """Decide and charge requests in order; `now_us` overrides the store clock (tests only)."""
        ...
