"""L1 and L2 against a real Redis: hits, expiry, the cross-process fill lock and its handoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from floodgate.cache import CacheConfig, TieredCache, make_key
from tests.integration.cache.conftest import Loader, redis_db
from tests.support.services import RedisServer

pytestmark = pytest.mark.redis


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_l2_serves_a_second_process_without_loading(
    redis_server: RedisServer, make_cache: Callable[..., Any]
) -> None:
    a = await make_cache(cache_url=redis_server.url)
    b = await make_cache(cache_url=redis_server.url)
    load = Loader({"total": 12})
    key = make_key("t", "total", user_id=3)
    hits = sample("floodgate_cache_lookups_total", tier="l2", result="hit")
    assert await a.get_or_load(key, load) == {"total": 12}
    assert await b.get_or_load(key, load) == {"total": 12}
    assert load.calls == 1
    assert sample("floodgate_cache_lookups_total", tier="l2", result="hit") == hits + 1


async def test_l2_entries_expire(redis_server: RedisServer, make_cache: Callable[..., Any]) -> None:
    a = await make_cache(cache_url=redis_server.url)
    b = await make_cache(cache_url=redis_server.url)
    load = Loader(1)
    await a.get_or_load("t:exp:1", load, ttl=0.2)
    await asyncio.sleep(0.3)
    await b.get_or_load("t:exp:1", load, ttl=0.2)
    assert load.calls == 2


async def test_l1_expiry_falls_back_to_l2(
    redis_server: RedisServer, make_cache: Callable[..., Any]
) -> None:
    cache = await make_cache(cache_url=redis_server.url, l1_max_ttl_s=0.05)
    load = Loader(1)
    await cache.get_or_load("t:l1exp:1", load, ttl=30)
    await asyncio.sleep(0.08)
    hits = sample("floodgate_cache_lookups_total", tier="l2", result="hit")
    await cache.get_or_load("t:l1exp:1", load, ttl=30)
    assert load.calls == 1
    assert sample("floodgate_cache_lookups_total", tier="l2", result="hit") == hits + 1


async def test_stampede_across_processes_sharing_a_sidecar_loads_once(
    redis_server: RedisServer, make_cache: Callable[..., Any]
) -> None:
    caches = [
        await make_cache(cache_url=redis_server.url, bus_url=redis_server.url) for _ in range(2)
    ]
    load = Loader("cold", delay=0.1)
    results = await asyncio.gather(
        *(caches[i % 2].get_or_load("t:stampede:1", load) for i in range(500))
    )
    assert results == ["cold"] * 500
    assert load.calls == 1


async def test_stampede_across_pods_is_answered_by_the_handoff(
    redis_server: RedisServer, make_cache: Callable[..., Any]
) -> None:
    # Two pods: each its own sidecar (a database of its own here), one shared Redis for the lock.
    shared = redis_db(redis_server, 0)
    pod_a = await make_cache(cache_url=redis_db(redis_server, 1), bus_url=shared)
    pod_b = await make_cache(cache_url=redis_db(redis_server, 2), bus_url=shared)
    load = Loader("cold", delay=0.1)
    coalesced = sample("floodgate_cache_fills_total", outcome="coalesced")
    results = await asyncio.gather(
        *(c.get_or_load("t:pods:1", load) for c in (pod_a, pod_b) for _ in range(100))
    )
    assert results == ["cold"] * 200
    assert load.calls == 1
    assert sample("floodgate_cache_fills_total", outcome="coalesced") >= coalesced + 199
    # Each pod's sidecar now holds the value: a fresh process in either pod does not load.
    late_b = await make_cache(cache_url=redis_db(redis_server, 2), bus_url=shared)
    assert await late_b.get_or_load("t:pods:1", load) == "cold"
    assert load.calls == 1


async def test_a_dead_lock_holder_is_replaced_when_its_lock_expires(
    redis_server: RedisServer, make_cache: Callable[..., Any], key_prefix: str
) -> None:
    cache = await make_cache(cache_url=redis_server.url, lock_ttl_s=5.0, lock_wait_s=3.0)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # A process took the fill lock and died without releasing it: it expires in 0.3 s.
        await client.set(f"{key_prefix}:l:t:dead:1\x1f", "gone", px=300)
        load = Loader("mine")
        started = time.monotonic()
        assert await cache.get_or_load("t:dead:1", load) == "mine"
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert load.calls == 1
    assert 0.25 <= elapsed < 2.0


async def test_a_stuck_lock_holder_is_not_waited_for_beyond_lock_wait(
    redis_server: RedisServer, make_cache: Callable[..., Any], key_prefix: str
) -> None:
    cache = await make_cache(cache_url=redis_server.url, lock_wait_s=0.2)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set(f"{key_prefix}:l:t:stuck:1\x1f", "slow", px=10_000)
        started = time.monotonic()
        assert await cache.get_or_load("t:stuck:1", Loader("mine")) == "mine"
        assert 0.15 <= time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_check_reports_reachability(
    redis_server: RedisServer, make_cache: Callable[..., Any]
) -> None:
    cache = await make_cache(cache_url=redis_server.url, bus_url=redis_server.url)
    assert await cache.check() == {"l2": True, "bus": True}


def test_a_redis_cache_can_be_started_again_in_another_event_loop(
    redis_server: RedisServer, key_prefix: str
) -> None:
    cache = TieredCache(
        CacheConfig(cache_url=redis_server.url, bus_url=redis_server.url, key_prefix=key_prefix)
    )
    load = Loader("v")

    async def use() -> object:
        async with cache:
            await cache.invalidate_keys("t:loop:1")
            return await cache.get_or_load("t:loop:1", load)

    assert asyncio.run(use()) == "v"
    assert asyncio.run(use()) == "v"
    assert load.calls == 2
