"""The Redis-facing pieces: an endpoint and its breaker, the L2 stores, the cross-process lock.

Redis layout (prefix `fg:c` by default):
- `fg:c:v:<key>`  hash variant → sealed blob: the L2 entry (one HGET per lookup).
- `fg:c:l:<key>\\x1f<variant>`  the fill lock (SET NX PX, value = the holder's token).
- `fg:c:h:<key>`  hash variant → sealed blob: a fill handed to the processes waiting on the lock.
- `fg:c:a:<id>`  list of acknowledgements for one invalidation message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Protocol, TypeVar, cast

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from floodgate.cache.lru import TtlLru
from floodgate.redis_client import redis_client
from floodgate.resilience import CircuitBreaker, RateLimitedLog

T = TypeVar("T")
logger = logging.getLogger("floodgate.cache")

# Returns the handed-off blob if a fill is waiting, 1 if the caller now holds the lock, 0 if not.
_ACQUIRE_LUA = """
local blob = redis.call('HGET', KEYS[1], ARGV[1])
if blob then return blob end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# Drops the lock if still ours, and hands the fill (if any) to the waiters.
_RELEASE_LUA = """
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# Removes an expired handoff, unless a fresh one replaced it meanwhile.
_DROP_IF_SAME_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


class Unavailable(Exception):
    """A backend was skipped (circuit open) or failed; the caller carries on without it."""


class RedisEndpoint:
    """One Redis server as this process uses it: a client, a circuit breaker, error accounting."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout_s: float,
        breaker: CircuitBreaker,
        errors: Counter,
        log_interval_s: float,
    ) -> None:
        self.name = name
        # The sidecar holds L2; the bus (and the fill lock) live on the shared Redis.
        self.role = "shared" if name == "bus" else "sidecar"
        self.url = url
        self.timeout_s = timeout_s
        self.breaker = breaker
        self._errors = errors
        self._log = RateLimitedLog(logger, log_interval_s)
        self.client: aioredis.Redis | None = None

    def new_client(self, *, role: str | None = None) -> aioredis.Redis:
        """A client that fails fast: no retries (the breaker decides what happens next), and a
        bounded pool whose callers queue for a connection rather than fail when many requests miss
        at once. Commands are timed under `role` (default: this endpoint's)."""
        return redis_client(
            self.url,
            timeout_s=self.timeout_s,
            fail_fast=True,
            blocking_pool_size=64,
            health_check_interval_s=5,
            role=role or self.role,
        )

    def open(self) -> aioredis.Redis:
        if self.client is None:
            self.client = self.new_client()
        return self.client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        client = self.client
        if client is None or not self.breaker.allow():
            self._errors.inc()
            raise Unavailable(self.name)
        try:
            result = await op(client)
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            raise Unavailable(self.name) from exc
        self.breaker.success()
        return result

    def failed(self, exc: BaseException) -> None:
        self.breaker.failure()
        self._errors.inc()
        self._log.warning(
            "cache %s (%s) unavailable, serving without it: %s: %s",
            self.name,
            self.url,
            type(exc).__name__,
            exc,
        )


class L2Store(Protocol):
    """The second tier. Every method raises Unavailable when the store cannot be used right now."""

    async def get(self, key: str, variant: str) -> bytes | None: ...

    async def put(self, key: str, variant: str, blob: bytes, ttl_s: float) -> None: ...

    async def delete(self, keys: Iterable[str]) -> None: ...

    async def delete_prefixes(self, prefixes: Iterable[str]) -> None: ...


class MemoryL2:
    """`memory://`: L2 inside this process (for local runs and tests; nothing is shared)."""

    def __init__(self, max_entries: int) -> None:
        self._lru: TtlLru[bytes] = TtlLru(max_entries)

    async def get(self, key: str, variant: str) -> bytes | None:
        return self._lru.get(key, variant)

    async def put(self, key: str, variant: str, blob: bytes, ttl_s: float) -> None:
        self._lru.put(key, variant, blob, ttl_s)

    async def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._lru.pop(key)

    async def delete_prefixes(self, prefixes: Iterable[str]) -> None:
        for prefix in prefixes:
            if prefix:
                self._lru.pop_prefix(prefix)
            else:
                self._lru.clear()


async def _unlink_matching(client: aioredis.Redis, pattern: str) -> None:
    batch: list[bytes] = []
    async for name in client.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) >= 500:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


async def _hget(name: str, field: str, client: aioredis.Redis) -> bytes | None:
    return cast("bytes | None", await client.hget(name, field))


async def _hget_many(
    reads: Sequence[tuple[str, str, asyncio.Future[bytes | None]]], client: aioredis.Redis
) -> list[bytes | None]:
    async with client.pipeline(transaction=False) as pipe:
        for name, field, _ in reads:
            pipe.hget(name, field)
        return cast("list[bytes | None]", await pipe.execute())


class RedisL2:
    """L2 in Redis (the pod's sidecar): one hash per key, one field per variant.

    Lookups made during one event-loop turn travel together in one pipeline (at most
    `max_in_flight` pipelines on the wire; later lookups form the next one): a busy process pays
    one round trip and one connection for many requests, not one each.
    """

    def __init__(self, endpoint: RedisEndpoint, prefix: str, max_in_flight: int = 2) -> None:
        self.endpoint = endpoint
        self._prefix = f"{prefix}:v:"
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._queued: list[tuple[str, str, asyncio.Future[bytes | None]]] = []
        self._flush_scheduled = False
        self._batches: set[asyncio.Task[None]] = set()

    async def get(self, key: str, variant: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._queued.append((self._prefix + key, variant, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued or self._in_flight >= self._max_in_flight:
            return  # a batch on the wire sends the queue when it lands
        batch, self._queued = self._queued, []
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[bytes | None]]]) -> None:
        try:
            if len(batch) == 1:
                name, field, _ = batch[0]
                results = [await self.endpoint.call(partial(_hget, name, field))]
            else:
                results = await self.endpoint.call(partial(_hget_many, batch))
        except Unavailable as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable(str(exc)))
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable(repr(exc)))
            raise
        else:
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            if self._queued:
                self._flush()

    async def put(self, key: str, variant: str, blob: bytes, ttl_s: float) -> None:
        name = self._prefix + key
        ttl_ms = max(1, int(ttl_s * 1000))

        async def op(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(name, variant, blob)
                pipe.pexpire(name, ttl_ms)
                await pipe.execute()

        await self.endpoint.call(op)

    async def delete(self, keys: Iterable[str]) -> None:
        names = [self._prefix + key for key in keys]
        if names:
            await self.endpoint.call(lambda r: r.unlink(*names))

    async def delete_prefixes(self, prefixes: Iterable[str]) -> None:
        for prefix in prefixes:
            pattern = f"{self._prefix}{prefix}*"
            await self.endpoint.call(partial(_unlink_matching, pattern=pattern))


class FillLocks:
    """The cross-process fill lock (SET NX PX) and the handoff of its result to the waiters."""

    def __init__(self, endpoint: RedisEndpoint, prefix: str) -> None:
        self.endpoint = endpoint
        self._lock_prefix = f"{prefix}:l:"
        self._handoff_prefix = f"{prefix}:h:"
        client = endpoint.open()
        # Loaded with EVALSHA; a NOSCRIPT reply (Redis restarted) reloads the script transparently.
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._drop_if_same = client.register_script(_DROP_IF_SAME_LUA)

    def _names(self, key: str, variant: str) -> tuple[str, str]:
        return self._handoff_prefix + key, f"{self._lock_prefix}{key}\x1f{variant}"

    async def acquire(self, key: str, variant: str, token: str, lock_ttl_s: float) -> bytes | bool:
        """A handed-off blob, True when the lock is now ours, False when another holds it."""
        handoff, lock = self._names(key, variant)
        args: list[str | int | bytes] = [variant, token, max(1, int(lock_ttl_s * 1000))]
        result = await self.endpoint.call(
            lambda r: self._acquire(keys=[handoff, lock], args=args, client=r)
        )
        if isinstance(result, bytes):
            return result
        return bool(result)

    async def release(
        self, key: str, variant: str, token: str, blob: bytes | None, handoff_ttl_s: float
    ) -> None:
        handoff, lock = self._names(key, variant)
        args: list[str | int | bytes] = [
            token,
            variant,
            blob or b"",
            max(1, int(handoff_ttl_s * 1000)),
        ]
        await self.endpoint.call(lambda r: self._release(keys=[lock, handoff], args=args, client=r))

    async def drop_stale_handoff(self, key: str, variant: str, blob: bytes) -> None:
        handoff, _ = self._names(key, variant)
        await self.endpoint.call(
            lambda r: self._drop_if_same(keys=[handoff], args=[variant, blob], client=r)
        )

    async def drop_handoffs(self, keys: Iterable[str]) -> None:
        names = [self._handoff_prefix + key for key in keys]
        if names:
            await self.endpoint.call(lambda r: r.unlink(*names))

    async def drop_handoff_prefixes(self, prefixes: Iterable[str]) -> None:
        for prefix in prefixes:
            pattern = f"{self._handoff_prefix}{prefix}*"
            await self.endpoint.call(partial(_unlink_matching, pattern=pattern))
