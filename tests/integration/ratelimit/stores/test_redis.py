"""The Redis GCRA script: agrees with the memory store; server clock, coalescing, script reloads."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodgate.ratelimit import Charge, GcraLimit, MemoryStore, RedisStore
from floodgate.ratelimit.gcra import request_denied
from tests.support.services import RedisServer

pytestmark = pytest.mark.redis

SECOND = 1_000_000

LIMITS = [
    GcraLimit.from_rate(requests=3, period_s=10, burst=0, cost=1),
    GcraLimit.from_rate(requests=5, period_s=1, burst=2, cost=2),
    GcraLimit.from_rate(requests=1, period_s=86400, burst=0, cost=1),  # T > 2**32 us
    GcraLimit.from_rate(requests=7, period_s=3, burst=1, cost=1),
]

step = st.tuples(
    st.integers(min_value=0, max_value=2 * SECOND),  # time advance
    st.lists(  # one batch: requests, each a set of (key, limit, shadow) charges
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, len(LIMITS) - 1), st.booleans()),
            min_size=1,
            max_size=3,
            unique_by=lambda c: c[0],
        ),
        min_size=1,
        max_size=6,
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(step, min_size=1, max_size=25))
async def test_redis_script_agrees_with_memory_store(
    redis_store: RedisStore, steps: list[tuple[int, list[list[tuple[int, int, bool]]]]]
) -> None:
    tag = uuid.uuid4().hex  # fresh keys for every example
    memory = MemoryStore()
    now = 1_700_000_000 * SECOND
    for advance, batch in steps:
        now += advance
        requests = [
            [
                Charge(f"{{{tag}}}:k{key}:l{lim}", LIMITS[lim], shadow)
                for key, lim, shadow in request
            ]
            for request in batch
        ]
        expected = await memory.acquire_batch(requests, now_us=now)
        actual = await redis_store.acquire_batch(requests, now_us=now)
        assert actual == expected


async def test_server_clock_path(redis_store: RedisStore, key_tag: str) -> None:
    limit = GcraLimit.from_rate(requests=2, period_s=10)
    charge = [Charge(f"{{{key_tag}}}:k", limit)]
    first, second, third = await redis_store.acquire_batch([charge, charge, charge])
    assert (first[0].allowed, second[0].allowed, third[0].allowed) == (True, True, False)
    assert third[0].retry_after_us == pytest.approx(5 * SECOND, abs=50_000)
    raw = await redis_store.client.get(f"{{{key_tag}}}:k")
    assert raw is not None
    stored = int(raw)
    assert stored == pytest.approx(time.time() * SECOND + 10 * SECOND, abs=SECOND)
    ttl_ms = await redis_store.client.pttl(f"{{{key_tag}}}:k")
    assert 9_000 < ttl_ms <= 10_000  # keys vanish once their allowance is whole again


async def test_all_rules_of_a_request_in_one_atomic_call(
    redis_store: RedisStore, key_tag: str
) -> None:
    loose = Charge(f"{{{key_tag}}}:loose", GcraLimit.from_rate(requests=100, period_s=60))
    tight = Charge(f"{{{key_tag}}}:tight", GcraLimit.from_rate(requests=1, period_s=60))
    calls = redis_store.calls
    [ok, denied] = await redis_store.acquire_batch([[loose, tight], [loose, tight]])
    assert redis_store.calls == calls + 1
    assert not request_denied([loose, tight], ok)
    assert request_denied([loose, tight], denied)
    assert denied[0].remaining == 99  # the loose rule was charged once, by the first request only


async def test_coalescing_is_exact_and_amortised(redis_store: RedisStore, key_tag: str) -> None:
    charge = [Charge(f"{{{key_tag}}}:hot", GcraLimit.from_rate(requests=100, period_s=3600))]
    calls = redis_store.calls
    results = await asyncio.gather(*(redis_store.acquire(charge) for _ in range(1000)))
    assert sum(r[0].allowed for r in results) == 100
    used = redis_store.calls - calls
    assert used <= 10, f"{used} script calls for 1000 concurrent checks"
    # Decided in order: the remaining counts of the allowed ones are 99 .. 0, each once.
    assert sorted(r[0].remaining for r in results if r[0].allowed) == list(range(100))


async def test_uncoalesced_mode_still_exact(redis_server: RedisServer, key_tag: str) -> None:
    store = RedisStore(redis_server.url, coalesce=False, timeout_s=2.0)
    await store.start()
    try:
        charge = [Charge(f"{{{key_tag}}}:hot", GcraLimit.from_rate(requests=20, period_s=3600))]
        results = await asyncio.gather(*(store.acquire(charge) for _ in range(100)))
        assert sum(r[0].allowed for r in results) == 20
        assert store.calls == 100
    finally:
        await store.close()


async def test_script_flush_is_survived(redis_store: RedisStore, key_tag: str) -> None:
    charge = [Charge(f"{{{key_tag}}}:k", GcraLimit.from_rate(requests=5, period_s=60))]
    await redis_store.acquire(charge)
    await redis_store.client.script_flush()
    outcome = await redis_store.acquire(charge)
    assert outcome[0].remaining == 3
