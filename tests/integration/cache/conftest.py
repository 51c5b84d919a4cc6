"""Builders for the cache's Redis tests: caches on the session Redis, isolated by key prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from floodgate.cache import CacheConfig, TieredCache
from tests.support.services import RedisServer


def redis_db(server: RedisServer, db: int) -> str:
    """The server's URL on another logical database: a stand-in for another pod's sidecar."""
    return f"redis://127.0.0.1:{server.port}/{db}"


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_cache(key_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """`await make_cache(cache_url=…, **config)`: a started cache, closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(**config: Any) -> TieredCache:
            config.setdefault("key_prefix", key_prefix)
            cache = TieredCache(CacheConfig(**config))
            await cache.start()
            stack.push_async_callback(cache.close)
            return cache

        yield make


class Loader:
    """A counting loader with a settable value and delay."""

    def __init__(self, value: object = "v", delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.value
