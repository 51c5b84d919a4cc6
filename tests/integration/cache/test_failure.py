"""Redis down or slow: requests keep succeeding from the loader; the cache recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from floodgate.cache import CachedRoute, ResponseCacheMiddleware, TieredCache
from tests.integration.cache.conftest import Loader
from tests.support.services import RedisServer, start_redis

pytestmark = pytest.mark.redis

ITEM = CachedRoute(
    name="item", namespace="items", path="/items/{item_id}", path_params={"item_id": int}
)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def errors(backend: str) -> float:
    return (
        REGISTRY.get_sample_value("floodgate_cache_backend_errors_total", {"backend": backend})
        or 0.0
    )


def l2_hits() -> float:
    labels = {"tier": "l2", "result": "hit"}
    return REGISTRY.get_sample_value("floodgate_cache_lookups_total", labels) or 0.0


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.05)


async def test_killed_redis_serves_from_the_app_then_hits_resume(
    own_redis: RedisServer, make_cache: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # L1 off: every request goes to L2, so its loss and its return are both visible.
    cache: TieredCache = await make_cache(
        cache_url=own_redis.url, l1_max_entries=0, timeout_s=0.2, breaker_cooldown_s=0.2
    )
    reads = 0
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        nonlocal reads
        reads += 1
        return {"id": item_id}

    app.add_middleware(ResponseCacheMiddleware, cache=cache, routes=[ITEM])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/1")).status_code == 200
        await cache.wait_idle()
        hits = l2_hits()
        assert (await client.get("/items/1")).status_code == 200
        assert reads == 1
        assert l2_hits() == hits + 1

        own_redis.stop()
        before = errors("l2")
        caplog.set_level(logging.WARNING, logger="floodgate.cache")
        started = time.monotonic()
        for _ in range(50):
            response = await client.get("/items/1")
            assert response.status_code == 200
            assert response.json() == {"id": 1}
            # In-process requests never yield to the loop on their own; let the fill finish so
            # that the next request is a new lookup rather than a join of this one.
            await cache.wait_idle()
        # The breaker spares most requests the failed connection attempt.
        assert time.monotonic() - started < 2.0
        assert reads >= 50
        assert errors("l2") >= before + 50
        warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert 1 <= len(warnings) <= 3  # rate-limited

        own_redis.start()  # same port, empty

        async def hits_resume() -> bool:
            hits = l2_hits()
            await client.get("/items/1")
            await client.get("/items/1")
            return l2_hits() > hits

        await wait_until(hits_resume)


async def test_a_frozen_redis_costs_one_timeout_not_one_per_request(
    own_redis: RedisServer, make_cache: Callable[..., Any]
) -> None:
    cache: TieredCache = await make_cache(
        cache_url=own_redis.url, bus_url=own_redis.url, timeout_s=0.1, breaker_cooldown_s=0.3
    )
    load = Loader("v")
    await cache.get_or_load("t:frozen:0", load)
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)  # alive but answering nothing
    try:
        started = time.monotonic()
        for i in range(1, 41):
            assert await cache.get_or_load(f"t:frozen:{i}", load) == "v"
        elapsed = time.monotonic() - started
        assert load.calls == 41
        # Three timeouts open the breaker; a handful of probes follow. Never 40 timeouts.
        assert elapsed < 1.5, elapsed
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)

    async def l2_back() -> bool:
        other: TieredCache = await make_cache(cache_url=own_redis.url)
        hits = l2_hits()
        await cache.get_or_load("t:frozen:after", load)
        await other.get_or_load("t:frozen:after", load)
        return l2_hits() > hits

    await wait_until(l2_back)


async def test_writes_while_redis_is_down_are_not_undone_when_it_returns(
    own_redis: RedisServer, make_cache: Callable[..., Any]
) -> None:
    # The eviction the sidecar missed is replayed before the sidecar is read again.
    cache: TieredCache = await make_cache(
        cache_url=own_redis.url, l1_max_entries=0, timeout_s=0.2, breaker_cooldown_s=0.1
    )
    db = Loader("v1")
    assert await cache.get_or_load("t:down:1", db) == "v1"
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)  # keeps its data, like a network partition
    try:
        db.value = "v2"
        await cache.invalidate_keys("t:down:1")
        assert await cache.get_or_load("t:down:1", db) == "v2"
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    for _ in range(20):
        assert await cache.get_or_load("t:down:1", db) == "v2"
        await asyncio.sleep(0.02)
