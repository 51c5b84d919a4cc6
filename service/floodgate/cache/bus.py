"""Invalidation messages between processes: Redis pub/sub with acknowledgements, or in-process only.

A publisher waits until every process that received the message (PUBLISH's receiver count) has
applied it and pushed an acknowledgement, so when `invalidate()` returns no subscribed process can
still serve the old value. A message that could not be published is kept (bounded) and re-sent when
the bus is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from floodgate.cache.stores import RedisEndpoint, Unavailable
from floodgate.resilience import RateLimitedLog

# Invalidation messages handled per batch by a listener.
MAX_BATCH = 256
logger = logging.getLogger("floodgate.cache")
MAX_PENDING_KEYS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What to evict: exact keys, whole namespaces (key prefixes `ns:`), or everything."""

    keys: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    everything: bool = False

    def merge(self, other: Invalidation) -> Invalidation:
        keys = tuple(dict.fromkeys((*self.keys, *other.keys)))
        everything = self.everything or other.everything or len(keys) > MAX_PENDING_KEYS
        if everything:
            return Invalidation(everything=True)
        return Invalidation(keys, tuple(dict.fromkeys((*self.namespaces, *other.namespaces))))

    def to_wire(self, origin: str, ack_key: str) -> bytes:
        return orjson.dumps(
            {"o": origin, "a": ack_key, "k": self.keys, "n": self.namespaces, "e": self.everything}
        )

    @staticmethod
    def from_wire(data: bytes) -> tuple[Invalidation, str, str]:
        raw: dict[str, Any] = orjson.loads(data)
        inv = Invalidation(
            tuple(str(k) for k in raw.get("k", ())),
            tuple(str(n) for n in raw.get("n", ())),
            bool(raw.get("e", False)),
        )
        return inv, str(raw["o"]), str(raw["a"])


Apply = Callable[[Invalidation], Awaitable[None]]
Resync = Callable[[], Awaitable[None]]


class MemoryBus:
    """`memory://`: caches of this process that share the URL see each other's invalidations."""

    _peers: Final[dict[str, list[MemoryBus]]] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self._apply: Apply | None = None

    @property
    def connected(self) -> bool:
        return True

    async def start(self, apply: Apply, resync: Resync) -> None:
        self._apply = apply
        self._peers.setdefault(self.url, []).append(self)

    async def close(self) -> None:
        peers = self._peers.get(self.url, [])
        if self in peers:
            peers.remove(self)
        self._apply = None

    async def publish(self, inv: Invalidation) -> None:
        for peer in list(self._peers.get(self.url, ())):
            if peer is not self and peer._apply is not None:
                await peer._apply(inv)

    async def check(self) -> bool:
        return True


class RedisBus:
    """Pub/sub on the shared Redis; every process subscribes from `start()` until `close()`."""

    def __init__(
        self,
        endpoint: RedisEndpoint,
        *,
        prefix: str,
        ack_timeout_s: float,
        log_interval_s: float,
    ) -> None:
        self.endpoint = endpoint
        self.channel = f"{prefix}:invalidate"
        self._ack_prefix = f"{prefix}:a:"
        self.origin = ""
        self.ack_timeout_s = ack_timeout_s
        self._log = RateLimitedLog(logger, log_interval_s)
        self._apply: Apply | None = None
        self._resync: Resync | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._pending: Invalidation | None = None
        self._republish: set[asyncio.Task[None]] = set()
        self.connected = False

    async def start(self, apply: Apply, resync: Resync) -> None:
        self._apply, self._resync = apply, resync
        # Chosen here, not at construction: an app built before a fork (gunicorn --preload) must
        # not give every worker the same identity, or they would ignore each other's messages.
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._subscribed = asyncio.Event()  # of this loop (an app may be started in several)
        self.endpoint.open()
        self._task = asyncio.create_task(self._listen(), name="floodgate-cache-invalidations")
        # Give the subscription a moment so that writes right after start are heard; never block
        # start-up on an unreachable bus (the listener keeps retrying in the background).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), self.endpoint.timeout_s * 4)

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._republish) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False
        await self.endpoint.close()

    async def check(self) -> bool:
        try:
            await self.endpoint.call(lambda r: r.ping())
        except Unavailable:
            return False
        return self.connected

    async def publish(self, inv: Invalidation) -> None:
        """Publish and wait for the acknowledgements; on failure keep the message for later."""
        if self._pending is not None:
            inv = self._pending.merge(inv)
            self._pending = None
        ack_key = f"{self._ack_prefix}{uuid.uuid4().hex}"
        payload = inv.to_wire(self.origin, ack_key)
        try:
            receivers = await self.endpoint.call(lambda r: r.publish(self.channel, payload))
        except Unavailable:
            self._pending = inv if self._pending is None else self._pending.merge(inv)
            return
        await self._await_acks(ack_key, int(receivers))

    async def _await_acks(self, ack_key: str, expected: int) -> None:
        got, delay = 0, 0.0005
        deadline = time.monotonic() + self.ack_timeout_s
        while got < expected:
            try:
                items = await self.endpoint.call(partial(_pop, ack_key, expected - got))
            except Unavailable:
                return
            got += len(items or ())
            if got >= expected:
                break
            if time.monotonic() >= deadline:
                self._log.warning(
                    "invalidation acknowledged by %d of %d processes within %.2fs; the others may "
                    "serve the previous value until they catch up",
                    got,
                    expected,
                    self.ack_timeout_s,
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def _listen(self) -> None:
        backoff, first = 0.05, True
        while True:
            client = self.endpoint.new_client(role="shared")
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected = True
                self._subscribed.set()
                if not first and self._resync is not None:
                    # Messages may have been missed while we were away.
                    await self._resync()
                first, backoff = False, 0.05
                if self._pending is not None:
                    pending, self._pending = self._pending, None
                    # Not awaited here: our own listener must stay free to acknowledge it.
                    task = asyncio.create_task(self.publish(pending))
                    self._republish.add(task)
                    task.add_done_callback(self._republish.discard)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    # Drain what has already arrived and handle it as one batch: one eviction
                    # pass and one acknowledging round trip, however many writers are busy.
                    batch: list[bytes] = []
                    while message is not None and len(batch) < MAX_BATCH:
                        if message.get("type") == "message":
                            batch.append(message["data"])
                        message = await pubsub.get_message(timeout=0.0)
                    if message is not None and message.get("type") == "message":
                        batch.append(message["data"])
                    if batch:
                        await self._handle(batch)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self.endpoint.failed(exc)
            except Exception:  # a bad message must not kill the listener
                logger.exception("cache invalidation listener failed; restarting it")
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _handle(self, batch: list[bytes]) -> None:
        received: list[tuple[Invalidation, str, str]] = []
        for data in batch:
            try:
                received.append(Invalidation.from_wire(data))
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a malformed cache invalidation message")
        foreign = [inv for inv, origin, _ in received if origin != self.origin]
        if foreign and self._apply is not None:
            await self._apply(combine(foreign))
        ack_keys = [ack_key for _, _, ack_key in received]
        if not ack_keys:
            return
        ttl_ms = max(1000, int(self.ack_timeout_s * 2000))

        async def ack(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for ack_key in ack_keys:
                    pipe.rpush(ack_key, self.origin)
                    pipe.pexpire(ack_key, ttl_ms)
                await pipe.execute()

        with contextlib.suppress(Unavailable):
            await self.endpoint.call(ack)


def combine(invs: list[Invalidation]) -> Invalidation:
    """One invalidation covering all of `invs` (no escalation to `everything` for many keys)."""
    if len(invs) == 1:
        return invs[0]
    if any(inv.everything for inv in invs):
        return Invalidation(everything=True)
    keys = tuple(dict.fromkeys(k for inv in invs for k in inv.keys))
    namespaces = tuple(dict.fromkeys(n for inv in invs for n in inv.namespaces))
    return Invalidation(keys, namespaces)


async def _pop(key: str, count: int, client: aioredis.Redis) -> list[bytes] | None:
    return cast("list[bytes] | None", await client.lpop(key, count))
