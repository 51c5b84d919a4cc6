"""The value API on in-memory tiers: single-flight, errors, expiry, and the stale-fill guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from floodgate.cache import CacheConfig, TieredCache, make_key


@pytest.fixture
async def cache() -> AsyncIterator[TieredCache]:
    cache = TieredCache(CacheConfig(bus_url="memory://tiered-unit"))
    await cache.start()
    yield cache
    await cache.close()


class Loader:
    """Counts calls; optionally holds each call until released."""

    def __init__(self, value: object = "v", *, gate: asyncio.Event | None = None) -> None:
        self.value = value
        self.calls = 0
        self.gate = gate
        self.entered = asyncio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0.01)
        return self.value


async def test_second_read_is_served_from_the_cache(cache: TieredCache) -> None:
    load = Loader({"total": 3})
    key = make_key("t", "total", user_id=1)
    assert await cache.get_or_load(key, load) == {"total": 3}
    assert await cache.get_or_load(key, load) == {"total": 3}
    assert load.calls == 1


async def test_none_is_a_cacheable_value(cache: TieredCache) -> None:
    load = Loader(None)
    assert await cache.get_or_load("t:none:1", load) is None
    assert await cache.get_or_load("t:none:1", load) is None
    assert load.calls == 1


async def test_entries_expire_after_their_ttl(cache: TieredCache) -> None:
    load = Loader(1)
    await cache.get_or_load("t:ttl:1", load, ttl=0.05)
    await asyncio.sleep(0.08)
    await cache.get_or_load("t:ttl:1", load, ttl=0.05)
    assert load.calls == 2


async def test_concurrent_misses_coalesce_into_one_load(cache: TieredCache) -> None:
    load = Loader(42)
    results = await asyncio.gather(*(cache.get_or_load("t:cold:1", load) for _ in range(500)))
    assert results == [42] * 500
    assert load.calls == 1


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached(cache: TieredCache) -> None:
    calls = 0

    async def boom() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(cache.get_or_load("t:err:1", boom) for _ in range(20)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await cache.get_or_load("t:err:1", boom)
    assert calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_others(cache: TieredCache) -> None:
    gate = asyncio.Event()
    load = Loader("v", gate=gate)
    first = asyncio.create_task(cache.get_or_load("t:cancel:1", load))
    await load.entered.wait()
    second = asyncio.create_task(cache.get_or_load("t:cancel:1", load))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "v"
    assert load.calls == 1


async def test_a_fill_that_started_before_an_invalidation_is_never_stored(
    cache: TieredCache,
) -> None:
    # The reader loads the old value, the writer commits and invalidates, the reader's load returns.
    gate = asyncio.Event()
    old = Loader("old", gate=gate)
    reader = asyncio.create_task(cache.get_or_load("t:race:1", old))
    await old.entered.wait()
    await cache.invalidate_keys("t:race:1")  # the write has returned from here on
    gate.set()
    assert await reader == "old"  # concurrent with the write: either answer is linearizable
    new = Loader("new")
    assert await cache.get_or_load("t:race:1", new) == "new"
    assert new.calls == 1


async def test_a_read_after_the_write_never_joins_the_stale_fill(cache: TieredCache) -> None:
    gate = asyncio.Event()
    old = Loader("old", gate=gate)
    reader = asyncio.create_task(cache.get_or_load("t:race:2", old))
    await old.entered.wait()
    await cache.invalidate_keys("t:race:2")
    late = asyncio.create_task(cache.get_or_load("t:race:2", Loader("new")))
    gate.set()
    assert await late == "new"
    assert await reader == "old"


async def test_namespace_and_full_invalidation(cache: TieredCache) -> None:
    a, b, c = Loader(1), Loader(2), Loader(3)
    await cache.get_or_load("users:a:1", a)
    await cache.get_or_load("users:b:1", b)
    await cache.get_or_load("messages:c:1", c)
    await cache.invalidate_namespace("users")
    for key, load in (("users:a:1", a), ("users:b:1", b), ("messages:c:1", c)):
        await cache.get_or_load(key, load)
    assert (a.calls, b.calls, c.calls) == (2, 2, 1)
    await cache.invalidate_all()
    await cache.get_or_load("messages:c:1", c)
    assert c.calls == 2


async def test_memory_bus_reaches_the_other_caches_of_the_process() -> None:
    first = TieredCache(CacheConfig(bus_url="memory://tiered-peers"))
    second = TieredCache(CacheConfig(bus_url="memory://tiered-peers"))
    async with first, second:
        load = Loader("v1")
        await first.get_or_load("t:peer:1", load)
        await second.get_or_load("t:peer:1", load)
        assert load.calls == 2  # memory L2 is per cache: each loads once
        await first.invalidate_keys("t:peer:1")
        load.value = "v2"
        assert await second.get_or_load("t:peer:1", load) == "v2"
        assert await first.get_or_load("t:peer:1", load) == "v2"


async def test_check_reports_memory_stores_as_up(cache: TieredCache) -> None:
    assert await cache.check() == {"l2": True, "bus": True}


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="unsupported cache store URL"):
        CacheConfig(cache_url="memcached://x")
    with pytest.raises(ValueError, match="timeout_s"):
        CacheConfig(timeout_s=0)
    cache = TieredCache.from_settings("memory://", "memory://", l1_max_entries=5, lock_ttl_s=1.0)
    assert cache.config.l1_max_entries == 5
    assert cache.config.lock_ttl_s == 1.0


def test_a_cache_can_be_started_again_in_another_event_loop() -> None:
    cache = TieredCache(CacheConfig(bus_url="memory://tiered-loops"))

    async def use() -> object:
        async with cache:
            return await cache.get_or_load("t:loop:1", Loader("v"))

    assert asyncio.run(use()) == "v"
    assert asyncio.run(use()) == "v"
