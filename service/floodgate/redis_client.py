"""`redis_client`: the one way floodgate builds a `redis.asyncio.Redis` (it connects lazily)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from floodgate.telemetry import instrument_redis


def redis_client(
    url: str,
    *,
    timeout_s: float,
    fail_fast: bool = False,
    blocking_pool_size: int | None = None,
    health_check_interval_s: float = 0,
    role: str | None = None,
) -> aioredis.Redis:
    """A client for `url` whose socket reads and connects time out after `timeout_s`.

    `fail_fast`: no retries of failed commands (redis-py retries by default), for callers whose
    circuit breaker decides what happens next. `blocking_pool_size`: a pool of at most that many
    connections whose callers wait up to `timeout_s` for one, rather than fail, when many requests
    need one at once; None is redis-py's unbounded pool. `health_check_interval_s`: PING a
    connection idle that long before reusing it (0: never, redis-py's default). `role`: time every
    command under that `role` label (telemetry), None leaves the client uninstrumented.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": health_check_interval_s,
    }
    if fail_fast:
        options["retry"] = Retry(NoBackoff(), 0)
    if blocking_pool_size is None:
        client = aioredis.from_url(url, **options)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=blocking_pool_size, timeout=timeout_s, **options
        )
        client = aioredis.Redis.from_pool(pool)
    return client if role is None else instrument_redis(client, role=role)
