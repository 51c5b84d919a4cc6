"""The Redis counter store: GCRA for a batch of requests in one atomic Lua call on the Redis clock.

Concurrent requests of one event loop are coalesced: every request checked during a loop tick joins
one batch, sent as a single EVALSHA once the loop gets round to it (at most `max_in_flight` batches
are on the wire; whatever arrives meanwhile forms the next batch). The script decides the requests
of a batch one after the other, exactly as if they had come one by one, so coalescing changes the
cost, never the result.

Keys share one hash tag (`{floodgate}:rl:…` by default), so every batch, whatever rules and clients
it holds, lives in one slot and runs unchanged on Redis Cluster (at the price of not spreading
counters over shards). The script (`gcra_batch.lua`, read when the store is built) is loaded
through redis-py's `register_script`: a NOSCRIPT reply (SCRIPT FLUSH, Redis restart, fail-over)
reloads it and retries transparently.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from floodgate.ratelimit.gcra import Charge, GcraLimit, Outcome, StoreUnavailable
from floodgate.redis_client import redis_client
from floodgate.resilience import BreakerState, CircuitBreaker

logger = logging.getLogger("floodgate.ratelimit")


def store_breaker(
    *,
    failure_threshold: int = 3,
    cooldown_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> CircuitBreaker:
    """A breaker for the counter store that logs its transitions: a limiter deciding by failureMode
    alone changes what clients get, so operators must see the store go away and come back."""

    def log(old: BreakerState, new: BreakerState) -> None:
        if new == "open" and old == "closed":
            logger.warning(
                "rate-limit store failed %d times in a row: breaker open for %.1fs",
                failure_threshold,
                cooldown_s,
            )
        elif new == "half_open":
            logger.info("rate-limit store breaker half-open: probing")
        elif new == "closed":
            logger.warning("rate-limit store reachable again: breaker closed")

    return CircuitBreaker(
        failure_threshold=failure_threshold, cooldown_s=cooldown_s, clock=clock, on_state_change=log
    )


def gcra_batch_lua() -> str:
    """The batch GCRA script (`gcra_batch.lua`, shipped next to this module)."""
    return (
        importlib.resources.files("floodgate.ratelimit.stores")
        .joinpath("gcra_batch.lua")
        .read_text(encoding="utf-8")
    )


_Pending = tuple[Sequence[Charge], "asyncio.Future[list[Outcome]]"]


class RedisStore:
    """Counters in (shared) Redis; see the module docstring."""

    remote = True

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        coalesce: bool = True,
        max_batch: int = 1024,
        max_in_flight: int = 2,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.coalesce = coalesce
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.breaker = breaker if breaker is not None else store_breaker()
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop start() ran on
        self._wire_cache: dict[tuple[GcraLimit, bool], str] = {}
        self.calls = 0  # script calls made (for tests and measurements)
        self._lua = gcra_batch_lua()

    async def start(self) -> None:
        # redis-py retries failed commands by default; a rate limiter must fail fast instead and let
        # the breaker and the policy's failureMode decide.
        self._client = redis_client(
            self.url, timeout_s=self.timeout_s, fail_fast=True, role="shared"
        )
        self._script = self._client.register_script(self._lua)
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout_s * 2)
        for _charges, future in self._pending:
            if not future.done():
                future.set_exception(StoreUnavailable("rate-limit store closed"))
        self._pending.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisStore.start() has not been called")
        return self._client

    async def acquire(self, charges: Sequence[Charge]) -> list[Outcome]:
        if self.breaker.rejects_now():  # refuse before queueing, not once the batch goes out
            raise self._breaker_open()
        if not self.coalesce:
            return (await self.acquire_batch((charges,)))[0]
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Outcome]] = loop.create_future()
        self._pending.append((charges, future))
        if not self._flush_scheduled and self._in_flight < self.max_in_flight:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _breaker_open(self) -> StoreUnavailable:
        return StoreUnavailable(
            "rate-limit store circuit breaker is open",
            retry_after_s=max(self.breaker.retry_after_s(), 0.001),
        )

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending and self._in_flight < self.max_in_flight:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            results = await self.acquire_batch([charges for charges, _ in batch])
        except BaseException as exc:
            # Whatever went wrong, every waiting request gets an answer (its failure mode).
            if not isinstance(exc, StoreUnavailable | asyncio.CancelledError):
                logger.exception("rate-limit batch failed unexpectedly")
            retry_after = exc.retry_after_s if isinstance(exc, StoreUnavailable) else 1.0
            for _charges, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable(str(exc), retry_after_s=retry_after))
            if not isinstance(exc, Exception):  # cancellation, interpreter exit
                raise
        else:
            for (_charges, future), outcomes in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(outcomes)
        finally:
            self._in_flight -= 1
            if self._pending and not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    async def acquire_batch(
        self, requests: Sequence[Sequence[Charge]], now_us: int | None = None
    ) -> list[list[Outcome]]:
        keys: dict[str, int] = {}
        parts: list[str] = []
        cache = self._wire_cache
        for charges in requests:
            parts.append(str(len(charges)))
            for charge in charges:
                index = keys.get(charge.key)
                if index is None:
                    index = keys[charge.key] = len(keys) + 1
                wire = cache.get(charge[1:])
                if wire is None:
                    if len(cache) > 10_000:  # only policy reloads add entries
                        cache.clear()
                    limit = charge.limit
                    wire = cache[charge[1:]] = (
                        f"{limit.interval_us} {limit.capacity} {limit.cost} {int(charge.shadow)}"
                    )
                parts.append(str(index))
                parts.append(wire)
        args = ("" if now_us is None else str(now_us), " ".join(parts))
        if not self.breaker.allow():
            raise self._breaker_open()
        try:
            async with asyncio.timeout(self.timeout_s):
                self.calls += 1
                raw: list[int] = await self._script(keys=list(keys), args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self.breaker.failure()
            raise StoreUnavailable(f"rate-limit store error: {exc!r}") from exc
        except BaseException:
            self.breaker.failure()
            raise
        self.breaker.success()
        results: list[list[Outcome]] = []
        pos = 1
        for charges in requests:
            outcomes = []
            for _ in charges:
                outcomes.append(Outcome(raw[pos] == 1, raw[pos + 1], raw[pos + 2], raw[pos + 3]))
                pos += 4
            results.append(outcomes)
        return results
