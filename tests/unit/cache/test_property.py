"""Property: whatever the interleaving, a read never returns a value older than the last write that
had been acknowledged (its invalidation returned) when the read started."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodgate.cache import CacheConfig, TieredCache


@dataclass(frozen=True)
class Op:
    kind: str  # "read" | "write"
    cache: int  # which cache (process) serves it
    key: int
    start: int  # loop turns before it starts
    before_db: int  # loop turns inside the loader before it reads the DB
    after_db: int  # loop turns inside the loader after it read the DB


ops = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["read", "read", "write"]),
        cache=st.integers(0, 1),
        key=st.integers(0, 1),
        start=st.integers(0, 12),
        before_db=st.integers(0, 4),
        after_db=st.integers(0, 4),
    ),
    min_size=1,
    max_size=24,
)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def run_schedule(caches: Sequence[TieredCache], schedule: Sequence[Op]) -> list[str]:
    """Run every op concurrently; return the violations of the property (empty when it holds)."""
    db = {0: 0, 1: 0}
    acked = {0: 0, 1: 0}
    violations: list[str] = []

    async def run(op: Op) -> None:
        await turns(op.start)
        key = f"p:item:{op.key}"
        if op.kind == "write":
            db[op.key] += 1
            version = db[op.key]
            await caches[op.cache].invalidate_keys(key)
            acked[op.key] = max(acked[op.key], version)
            return
        floor = acked[op.key]

        async def load() -> int:
            await turns(op.before_db)
            value = db[op.key]
            await turns(op.after_db)
            return value

        got = await caches[op.cache].get_or_load(key, load, ttl=60)
        if got < floor:
            violations.append(f"{op}: read v{got} after v{floor} was acknowledged")

    await asyncio.gather(*(run(op) for op in schedule))
    return violations


async def run_caches(configs: Sequence[CacheConfig], schedule: Sequence[Op]) -> list[str]:
    """Start one cache per config (two processes' worth), run the schedule, close them."""
    caches = [TieredCache(config) for config in configs]
    for cache in caches:
        await cache.start()
    try:
        return await run_schedule(caches, schedule)
    finally:
        for cache in caches:
            await cache.close()


async def run_in_memory(schedule: Sequence[Op]) -> list[str]:
    return await run_caches([CacheConfig(bus_url="memory://property")] * 2, schedule)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=ops)
def test_no_read_is_older_than_the_last_acknowledged_write(schedule: list[Op]) -> None:
    assert asyncio.run(run_in_memory(schedule)) == []
