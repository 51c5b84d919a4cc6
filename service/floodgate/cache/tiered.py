"""TieredCache: L1 in process, L2 in Redis or memory, single-flight fills, invalidation everywhere.

How a lookup goes (see docs/caching.md for the why):

1. L1 (a dict lookup). Hit → done.
2. Join the process's in-flight fill of the key (single-flight), or else lead a new one:
3. L2 (one HGET). Hit → promote to L1.
4. Fill lock on the shared Redis (SET NX PX, in a script that first looks for a fill handed off by
   another process). Another process holds it → poll briefly for its handoff; it died → take over.
5. Load, store in L1 and L2, hand the value to the processes waiting on the lock.

Invalidation marks the key's in-flight fill stale (a stale fill never stores: that is the guard
against "loaded before the write, stored after it"), waits for stores already under way, evicts L1
and this pod's L2, and publishes to every other process, which do the same and acknowledge before
`invalidate()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from floodgate.cache import metrics
from floodgate.cache.bus import Invalidation, MemoryBus, RedisBus, combine
from floodgate.cache.config import CacheConfig, is_memory_url
from floodgate.cache.entry import JSON, Codec, seal, unseal
from floodgate.cache.group_commit import GroupCommit, consume_exception
from floodgate.cache.keys import check_name
from floodgate.cache.lru import TtlLru
from floodgate.cache.stores import FillLocks, L2Store, MemoryL2, RedisEndpoint, RedisL2, Unavailable
from floodgate.resilience import CircuitBreaker

if TYPE_CHECKING:
    from floodgate.cache.routes import CachedRoute

T = TypeVar("T")
logger = logging.getLogger("floodgate.cache")

_FROM_L2: Final = 1
_LOADED: Final = 2
_HANDED_OFF: Final = 3


class _NoneValue:
    """Stands for a cached None in L1 (where None means "absent")."""


_NONE: Final = _NoneValue()


@dataclass(frozen=True, slots=True)
class Loaded(Generic[T]):
    """A loader's result; `store=False` shares it with concurrent callers but caches it nowhere."""

    value: T
    store: bool = True


class FlightAbandoned(Exception):
    """The fill a caller joined was cancelled before it produced anything: start over."""


class _Flight:
    __slots__ = ("future", "source", "stale")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.source = 0
        self.stale = False


@dataclass(slots=True)
class _Handoff:
    value: Any
    expires_at: float


class _DeferredDeletes:
    """Evictions not yet applied to a store; while any are, that store is not read."""

    __slots__ = ("lock", "pending")

    def __init__(self) -> None:
        self.pending: Invalidation | None = None
        self.lock = asyncio.Lock()

    def note(self, inv: Invalidation) -> None:
        self.pending = inv if self.pending is None else self.pending.merge(inv)

    @property
    def clean(self) -> bool:
        return self.pending is None and not self.lock.locked()


class TieredCache:
    """The cache engine: the package docstring has the API, docs/caching.md the design."""

    def __init__(self, config: CacheConfig | None = None) -> None:
        self.config = cfg = config or CacheConfig()
        self._l1: TtlLru[Any] = TtlLru(cfg.l1_max_entries)
        self._l1_ttl_cap = cfg.l1_max_ttl_s or math.inf
        self._flights: dict[str, dict[str, _Flight]] = {}
        self._storing: dict[str, set[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Concurrent writers' invalidations go out together: one L2 delete, one message and
        # one handoff delete per batch instead of per write.
        self._invalidations = GroupCommit(self._invalidate_batch, "floodgate-cache-invalidate")
        self._l2_deletes = _DeferredDeletes()
        self._handoff_deletes = _DeferredDeletes()
        self._l2: L2Store | None = None
        self._l2_endpoint: RedisEndpoint | None = None
        self._locks: FillLocks | None = None
        self._bus: MemoryBus | RedisBus
        self._started = False
        if not is_memory_url(cfg.cache_url):
            self._l2_endpoint = self._endpoint("l2", cfg.cache_url, metrics.L2_ERRORS)
        if is_memory_url(cfg.bus_url):
            self._bus = MemoryBus(cfg.bus_url)
        else:
            self._bus = RedisBus(
                self._endpoint("bus", cfg.bus_url, metrics.BUS_ERRORS),
                prefix=cfg.key_prefix,
                ack_timeout_s=cfg.ack_timeout_s,
                log_interval_s=cfg.log_interval_s,
            )

    @classmethod
    def from_settings(
        cls,
        cache_url: str,
        bus_url: str,
        *,
        l1_max_entries: int = 10_000,
        default_ttl_s: float = 30.0,
        timeout_s: float = 0.25,
        **options: Any,
    ) -> TieredCache:
        """Build (no connection yet) from the settings; `options`: other CacheConfig fields."""
        return cls(
            CacheConfig(
                cache_url=cache_url,
                bus_url=bus_url,
                l1_max_entries=l1_max_entries,
                default_ttl_s=default_ttl_s,
                timeout_s=timeout_s,
                **options,
            )
        )

    def _endpoint(self, name: str, url: str, errors: Any) -> RedisEndpoint:
        cfg = self.config
        return RedisEndpoint(
            name,
            url,
            timeout_s=cfg.timeout_s,
            breaker=CircuitBreaker(
                failure_threshold=cfg.breaker_failures, cooldown_s=cfg.breaker_cooldown_s
            ),
            errors=errors,
            log_interval_s=cfg.log_interval_s,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the Redis clients and subscribe to invalidations (never fails if Redis is down)."""
        if self._started:
            return
        cfg = self.config
        # Loop-bound state is made here: an app may be started and closed in several event loops
        # (one per TestClient, for instance).
        self._l2_deletes = _DeferredDeletes()
        self._handoff_deletes = _DeferredDeletes()
        self._invalidations = GroupCommit(self._invalidate_batch, "floodgate-cache-invalidate")
        self._flights.clear()
        self._storing.clear()
        if self._l2_endpoint is not None:
            self._l2_endpoint.open()
            self._l2 = RedisL2(self._l2_endpoint, cfg.key_prefix)
        else:
            self._l2 = MemoryL2(cfg.memory_l2_max_entries)
        if isinstance(self._bus, RedisBus):
            self._locks = FillLocks(self._bus.endpoint, cfg.key_prefix)
        elif self._l2_endpoint is not None:
            self._locks = FillLocks(self._l2_endpoint, cfg.key_prefix)
        self._started = True
        await self._bus.start(self._apply_remote, self._resync)

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        # Invalidations of committed writes finish first (each is bounded by the ack timeout).
        await self._invalidations.drain()
        await self._bus.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._l2_endpoint is not None:
            await self._l2_endpoint.close()
        self._l2 = None
        self._locks = None
        self._l1.clear()

    async def __aenter__(self) -> TieredCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_idle(self) -> None:
        """Wait for the fills and stores running in the background (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def check(self) -> dict[str, bool]:
        """Reachability for a readiness report: {"l2": bool, "bus": bool} (memory is always up)."""
        l2 = True
        if self._l2_endpoint is not None:
            try:
                await self._l2_endpoint.call(lambda r: r.ping())
            except Unavailable:
                l2 = False
        return {"l2": l2, "bus": await self._bus.check()}

    # -- reads ----------------------------------------------------------------------------------

    def l1_lookup(self, key: str, variant: str = "") -> Any:
        """The L1 value or None, counted in the lookup metrics (the middleware's hit path)."""
        value = self._l1.get(key, variant)
        if value is None:
            metrics.L1_MISS.inc()
        else:
            metrics.L1_HIT.inc()
        return value

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        codec: Codec[Any] = JSON,
    ) -> T:
        """The cached value of `key`, or `await loader()` once for every concurrent caller.

        Values pass through `codec` on their way to L2 (JSON by default). The value returned may be
        the object held in L1: treat it as read-only.
        """
        value = self.l1_lookup(key)
        if value is not None:
            return cast(T, None if value is _NONE else value)

        async def load() -> Loaded[T]:
            return Loaded(await loader())

        result: T = await self.fetch(key, "", load, ttl=ttl, codec=codec)
        return result

    async def fetch(
        self,
        key: str,
        variant: str,
        load: Callable[[], Awaitable[Loaded[T]]],
        *,
        ttl: float | None,
        codec: Codec[Any],
    ) -> T:
        """Steps 2-5 of a lookup, after an L1 miss (the middleware calls this directly)."""
        while True:
            slots = self._flights.get(key)
            flight = slots.get(variant) if slots is not None else None
            if flight is None:
                break
            try:
                value: T = await asyncio.shield(flight.future)
            except FlightAbandoned:
                continue
            if flight.source != _FROM_L2:
                metrics.FILL_COALESCED.inc()
            return value
        loop = asyncio.get_running_loop()
        flight = _Flight(loop.create_future())
        # Nobody may be left to read an error (every caller cancelled): mark it read.
        flight.future.add_done_callback(consume_exception)
        self._flights.setdefault(key, {})[variant] = flight
        # The leader reads L2 itself (the common case, kept cheap); only a miss needs a task.
        try:
            found = await self._l2_get(key, variant, codec)
        except BaseException:
            self._land(key, variant, flight)
            raise
        if found is not None:
            metrics.L2_HIT.inc()
            flight.source = _FROM_L2
            if not flight.stale:
                self._l1_put(key, variant, found.value, found.expires_at - time.time())
            flight.future.set_result(found.value)
            self._land(key, variant, flight)
            return cast(T, found.value)
        metrics.L2_MISS.inc()
        # The fill runs in its own task: a caller that goes away does not cancel it for the others.
        task = loop.create_task(
            self._fill(key, variant, flight, load, ttl or self.config.default_ttl_s, codec)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        result: T = await asyncio.shield(flight.future)
        return result

    def _land(self, key: str, variant: str, flight: _Flight) -> None:
        """The flight is over: unregister it; its callers start over if it produced nothing."""
        slots = self._flights.get(key)
        if slots is not None and slots.get(variant) is flight:
            del slots[variant]
            if not slots:
                del self._flights[key]
        if not flight.future.done():
            flight.future.set_exception(FlightAbandoned())

    async def _fill(
        self,
        key: str,
        variant: str,
        flight: _Flight,
        load: Callable[[], Awaitable[Loaded[Any]]],
        ttl: float,
        codec: Codec[Any],
    ) -> None:
        """Steps 4-5 after an L2 miss: the fill lock (or another process's handoff), load, store."""
        future = flight.future
        token: str | None = None
        try:
            locks = self._locks
            if locks is not None:
                outcome = await self._wait_for_fill(locks, key, variant, codec)
                if isinstance(outcome, _Handoff):
                    metrics.FILL_COALESCED.inc()
                    flight.source = _HANDED_OFF
                    if flight.stale:
                        future.set_result(outcome.value)
                        return
                    remaining = outcome.expires_at - time.time()
                    self._l1_put(key, variant, outcome.value, remaining)
                    future.set_result(outcome.value)
                    if locks.endpoint is not self._l2_endpoint and remaining > 0:
                        blob = seal(codec.encode(outcome.value), outcome.expires_at)
                        await self._store(key, variant, blob, remaining, None)
                    return
                token = outcome
            try:
                loaded = await load()
            except Exception as exc:
                metrics.FILL_ERROR.inc()
                future.set_exception(exc)
                return
            metrics.FILL_LOADED.inc()
            flight.source = _LOADED
            if not loaded.store or flight.stale:
                future.set_result(loaded.value)
                return
            expires_at = time.time() + ttl
            try:
                blob = seal(codec.encode(loaded.value), expires_at)
            except Exception as exc:
                future.set_exception(exc)
                return
            self._l1_put(key, variant, loaded.value, ttl)
            future.set_result(loaded.value)
            await self._store(key, variant, blob, ttl, token)
            token = None
        finally:
            self._land(key, variant, flight)
            if token is not None and self._locks is not None:
                # Nothing worth handing off (error, stale, not storable): a waiter takes over.
                with contextlib.suppress(Unavailable):
                    await self._locks.release(key, variant, token, None, 0)

    def _l1_put(self, key: str, variant: str, value: Any, ttl: float) -> None:
        self._l1.put(key, variant, _NONE if value is None else value, min(ttl, self._l1_ttl_cap))

    async def _l2_get(self, key: str, variant: str, codec: Codec[Any]) -> _Handoff | None:
        l2 = self._l2
        if l2 is None or not await self._usable(self._l2_deletes, self._l2_delete_now):
            return None
        try:
            blob = await l2.get(key, variant)
        except Unavailable:
            return None
        return self._open(blob, codec)

    @staticmethod
    def _open(blob: bytes | None, codec: Codec[Any]) -> _Handoff | None:
        if blob is None:
            return None
        opened = unseal(blob)
        if opened is None:
            return None
        try:
            return _Handoff(codec.decode(opened[0]), opened[1])
        except Exception:
            logger.warning("dropping an undecodable cache entry", exc_info=True)
            return None

    async def _wait_for_fill(
        self, locks: FillLocks, key: str, variant: str, codec: Codec[Any]
    ) -> _Handoff | str | None:
        """Our lock token, another process's handed-off fill, or None (load without the lock)."""
        if not await self._usable(self._handoff_deletes, self._handoff_delete_now):
            return None
        cfg = self.config
        token = uuid.uuid4().hex
        deadline = time.monotonic() + cfg.lock_wait_s
        delay = 0.002
        while True:
            try:
                got = await locks.acquire(key, variant, token, cfg.lock_ttl_s)
            except Unavailable:
                return None
            if got is True:
                return token
            if isinstance(got, bytes):
                handoff = self._open(got, codec)
                if handoff is not None:
                    return handoff
                with contextlib.suppress(Unavailable):
                    await locks.drop_stale_handoff(key, variant, got)
                continue
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _store(
        self, key: str, variant: str, blob: bytes, ttl: float, token: str | None
    ) -> None:
        """Write L2 and the lock handoff; registered first so that an invalidation waits for it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._storing.setdefault(key, set()).add(done)
        try:
            l2 = self._l2
            if l2 is not None and self._l2_deletes.clean:
                with contextlib.suppress(Unavailable):
                    await l2.put(key, variant, blob, ttl)
            if token is not None and self._locks is not None:
                handoff_ttl = min(ttl, self.config.handoff_ttl_s)
                with contextlib.suppress(Unavailable):
                    await self._locks.release(key, variant, token, blob, handoff_ttl)
        finally:
            done.set_result(None)
            waiting = self._storing.get(key)
            if waiting is not None:
                waiting.discard(done)
                if not waiting:
                    del self._storing[key]

    # -- invalidation ---------------------------------------------------------------------------

    async def invalidate(self, route: CachedRoute, /, **params: object) -> None:
        """Evict one cached response of `route` (all its `vary` variants) everywhere."""
        await self._invalidate(Invalidation(keys=(route.key(**params),)))

    async def invalidate_keys(self, *keys: str) -> None:
        """Evict these keys from L1, L2 and every other process; returns once all have done so."""
        if keys:
            await self._invalidate(Invalidation(keys=tuple(keys)))

    async def invalidate_namespace(self, *namespaces: str) -> None:
        """Evict every key of these namespaces (scans L2: for rare, bulk changes)."""
        for ns in namespaces:
            check_name("namespace", ns)
        if namespaces:
            await self._invalidate(Invalidation(namespaces=tuple(namespaces)))

    async def invalidate_all(self) -> None:
        await self._invalidate(Invalidation(everything=True))

    async def _invalidate(self, inv: Invalidation) -> None:
        """Returns once a batch carrying `inv` has been applied everywhere. The write it follows
        has committed, so the batch runs on even if this caller is cancelled (shutdown, a timeout
        around the handler): otherwise other processes would serve the old value until it expires.
        """
        await self._invalidations.submit(inv)

    async def _invalidate_batch(self, batch: list[Invalidation]) -> None:
        metrics.INVALIDATIONS_LOCAL.inc(len(batch))
        inv = combine(batch)
        await self._apply(inv)
        await self._bus.publish(inv)
        # Fills handed off before the other processes marked their loads stale are gone only now.
        self._handoff_deletes.note(inv)
        await self._flush(self._handoff_deletes, self._handoff_delete_now)

    async def _apply_remote(self, inv: Invalidation) -> None:
        metrics.INVALIDATIONS_REMOTE.inc()
        await self._apply(inv)

    async def _apply(self, inv: Invalidation) -> None:
        """Evict in this process and its L2, after every store already under way has landed."""
        waits: list[asyncio.Future[None]] = []
        if inv.everything:
            self._l1.clear()
            self._drop_flights(list(self._flights))
            for futures in self._storing.values():
                waits.extend(futures)
        else:
            for key in inv.keys:
                self._l1.pop(key)
                self._drop_flights([key])
                waits.extend(self._storing.get(key, ()))
            for ns in inv.namespaces:
                prefix = ns + ":"
                self._l1.pop_prefix(prefix)
                self._drop_flights([k for k in self._flights if k.startswith(prefix)])
                for key, futures in self._storing.items():
                    if key.startswith(prefix):
                        waits.extend(futures)
        if waits:
            await asyncio.gather(*waits)
        self._l2_deletes.note(inv)
        await self._flush(self._l2_deletes, self._l2_delete_now)

    def _drop_flights(self, keys: list[str]) -> None:
        for key in keys:
            for flight in self._flights.pop(key, {}).values():
                flight.stale = True

    async def _resync(self) -> None:
        """The bus was down: messages may have been missed, so nothing cached here is trusted."""
        await self._apply(Invalidation(everything=True))

    async def _flush(
        self, deletes: _DeferredDeletes, delete: Callable[[Invalidation], Awaitable[None]]
    ) -> bool:
        """Apply the deferred evictions; False when the store refused them (they stay deferred)."""
        async with deletes.lock:
            while deletes.pending is not None:
                inv, deletes.pending = deletes.pending, None
                try:
                    await delete(inv)
                except Unavailable:
                    deletes.note(inv)
                    return False
        return True

    async def _usable(
        self, deletes: _DeferredDeletes, delete: Callable[[Invalidation], Awaitable[None]]
    ) -> bool:
        """May a read use this store? Not while evictions are under way or refused (one retry)."""
        if deletes.clean:
            return True
        if deletes.lock.locked():
            return False
        return await self._flush(deletes, delete)

    async def _l2_delete_now(self, inv: Invalidation) -> None:
        l2 = self._l2
        if l2 is None:
            return
        if inv.everything:
            await l2.delete_prefixes([""])
            return
        await l2.delete(inv.keys)
        await l2.delete_prefixes([ns + ":" for ns in inv.namespaces])

    async def _handoff_delete_now(self, inv: Invalidation) -> None:
        locks = self._locks
        if locks is None:
            return
        if inv.everything:
            await locks.drop_handoff_prefixes([""])
            return
        await locks.drop_handoffs(inv.keys)
        await locks.drop_handoff_prefixes([ns + ":" for ns in inv.namespaces])
