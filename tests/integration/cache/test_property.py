"""The read-your-acknowledged-writes property with real Redis tiers: two processes' caches (each its
own sidecar) sharing the bus, in one event loop so that hypothesis controls the interleaving."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings

from floodgate.cache import CacheConfig
from tests.integration.cache.conftest import redis_db
from tests.support.services import RedisServer
from tests.unit.cache.test_property import Op, ops, run_caches

pytestmark = pytest.mark.redis


async def run_on_redis(server: RedisServer, schedule: Sequence[Op]) -> list[str]:
    prefix = f"p{uuid.uuid4().hex[:10]}"
    configs = [
        CacheConfig(cache_url=redis_db(server, db), bus_url=server.url, key_prefix=prefix)
        for db in (4, 5)
    ]
    return await run_caches(configs, schedule)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=ops)
def test_no_read_is_older_than_the_last_acknowledged_write(
    redis_server: RedisServer, schedule: list[Op]
) -> None:
    assert asyncio.run(run_on_redis(redis_server, schedule)) == []
