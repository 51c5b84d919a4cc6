"""GCRA semantics of the in-memory store (the Redis script is checked against it in integration)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from floodgate.ratelimit import Charge, GcraLimit, MemoryStore
from floodgate.ratelimit.gcra import decide, request_denied

SECOND = 1_000_000


def limit(requests: int = 5, period_s: int = 10, burst: int = 0, cost: int = 1) -> GcraLimit:
    return GcraLimit.from_rate(requests=requests, period_s=period_s, burst=burst, cost=cost)


def test_interval_is_rounded_up() -> None:
    assert limit(3, 10).interval_us == 3_333_334
    assert limit(50, 10).interval_us == 200_000


def test_fresh_key_allows_requests_plus_burst_at_once_then_one_per_interval() -> None:
    store = MemoryStore()
    charge = [Charge("k", limit(5, 10, burst=2))]  # T = 2 s, capacity 7
    t = 1000 * SECOND
    allowed = [store.acquire_now(charge, t)[0].allowed for _ in range(8)]
    assert allowed == [True] * 7 + [False]
    assert not store.acquire_now(charge, t + 2 * SECOND - 1)[0].allowed
    assert store.acquire_now(charge, t + 2 * SECOND)[0].allowed
    assert not store.acquire_now(charge, t + 2 * SECOND)[0].allowed


def test_outcome_numbers() -> None:
    store = MemoryStore()
    charge = [Charge("k", limit(5, 10))]  # T = 2 s
    t = 50 * SECOND
    first = store.acquire_now(charge, t)[0]
    assert first == (True, 4, 2 * SECOND, 0)  # 4 left, whole again in 2 s
    for _ in range(4):
        store.acquire_now(charge, t)
    denied = store.acquire_now(charge, t + SECOND // 2)[0]
    # TAT = t + 10 s; at t + 0.5 s the next unit frees at t + 2 s.
    assert denied == (False, 0, 9_500_000, 1_500_000)


def test_cost_spends_several_units() -> None:
    store = MemoryStore()
    charge = [Charge("k", limit(10, 10, cost=4))]
    t = 10 * SECOND
    assert [store.acquire_now(charge, t)[0].remaining for _ in range(2)] == [6, 2]
    third = store.acquire_now(charge, t)[0]
    assert not third.allowed
    assert third.remaining == 2
    assert third.retry_after_us == 2 * SECOND  # two more units needed, one per second


def test_denied_request_charges_no_rule() -> None:
    tats: dict[str, int] = {}
    loose = Charge("loose", limit(100, 10))
    tight = Charge("tight", limit(1, 10))
    now = 5 * SECOND
    assert not request_denied([loose, tight], decide(tats, [loose, tight], now))
    before = dict(tats)
    outcomes = decide(tats, [loose, tight], now)
    assert request_denied([loose, tight], outcomes)
    assert outcomes[0].allowed  # the loose rule would allow ...
    assert tats == before  # ... but nothing was charged


def test_shadow_rules_never_deny_and_count_only_what_they_would_allow() -> None:
    tats: dict[str, int] = {}
    shadow = Charge("s", limit(1, 10), shadow=True)
    enforced = Charge("e", limit(100, 10))
    now = 5 * SECOND
    decide(tats, [enforced, shadow], now)
    tat_after_first = tats["s"]
    outcomes = decide(tats, [enforced, shadow], now)
    assert not outcomes[1].allowed
    assert not request_denied([enforced, shadow], outcomes)
    assert tats["s"] == tat_after_first  # the shadow denial was not charged
    assert tats["e"] == now + 2 * enforced.limit.interval_us  # the request went through


def test_expired_entries_are_swept() -> None:
    clock = [0]
    store = MemoryStore(clock=lambda: clock[0])
    charge_limit = limit(1, 1)
    for i in range(1024):
        store.acquire_now([Charge(f"old{i}", charge_limit)])
    assert len(store) == 1024  # nothing had expired at the first sweep
    clock[0] = 10 * SECOND
    for i in range(1024):
        store.acquire_now([Charge(f"new{i}", charge_limit)])
    assert len(store) == 1024  # the old keys (TAT in the past) were dropped


arrivals = st.lists(st.integers(min_value=0, max_value=3 * SECOND), min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    gaps=arrivals,
    requests=st.integers(1, 20),
    period_s=st.integers(1, 5),
    burst=st.integers(0, 5),
    cost=st.integers(1, 3),
)
def test_never_more_than_capacity_plus_rate_times_elapsed(
    gaps: list[int], requests: int, period_s: int, burst: int, cost: int
) -> None:
    """Over any [t1, t2]: allowed units <= C + floor((t2 - t1) / T), with C = requests + burst.

    Also: a denial's retry_after is exact: the same request is denied 1 us earlier, allowed then.
    """
    rule = GcraLimit.from_rate(
        requests=requests, period_s=period_s, burst=burst, cost=min(cost, requests + burst)
    )
    tats: dict[str, int] = {}
    t = 10**12
    allowed_at: list[int] = []
    for gap in gaps:
        t += gap // (requests * 4)  # compress time so that limits are actually reached
        charge = [Charge("k", rule)]
        probe = dict(tats)
        outcome = decide(tats, charge, t)[0]
        if outcome.allowed:
            allowed_at.append(t)
        else:
            retry = outcome.retry_after_us
            assert retry > 0
            assert not decide(dict(probe), charge, t + retry - 1)[0].allowed
            assert decide(dict(probe), charge, t + retry)[0].allowed
    units = rule.cost
    for i, t1 in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            t2 = allowed_at[j]
            assert (j - i + 1) * units <= rule.capacity + (t2 - t1) // rule.interval_us


@settings(max_examples=200, deadline=None)
@given(
    gaps=arrivals,
    requests=st.integers(1, 20),
    burst=st.integers(0, 5),
    shadow=st.booleans(),
)
def test_single_rule_shortcut_matches_the_general_path(
    gaps: list[int], requests: int, burst: int, shadow: bool
) -> None:
    rule = GcraLimit.from_rate(requests=requests, period_s=1, burst=burst)
    roomy = Charge("other", GcraLimit.from_rate(requests=1000, period_s=1), shadow=True)
    alone: dict[str, int] = {}
    paired: dict[str, int] = {}
    t = 10**12
    for gap in gaps:
        t += gap // 50
        charge = Charge("k", rule, shadow)
        assert decide(alone, [charge], t) == decide(paired, [charge, roomy], t)[:1]
        assert alone.get("k") == paired.get("k")
