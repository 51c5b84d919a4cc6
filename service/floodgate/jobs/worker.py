"""The worker: one consumer of a queue's group that runs handlers with bounded concurrency.

Delivery is at least once; exactly-once *effect* is built above it with the hooks. The loop:

- reads at most as many entries as it has free slots (XREADGROUP COUNT = free slots, short BLOCK);
- renews the claim of every running job every `renew_every_s` (XCLAIM min-idle 0 JUSTID, only
  while still ours), so a running job's idle time never reaches `redelivery_timeout_s` however long
  it runs: nobody reclaims a job that is running, and no long job runs twice;
- reclaims entries idle for `redelivery_timeout_s` (XAUTOCLAIM): only a consumer that stopped
  renewing (crashed, hung, released at shutdown) leaves them idle that long, so a crash is noticed
  within about `redelivery_timeout_s` whatever the length of the job;
- counts deliveries as the entry's `attempt` (deliveries of the job's earlier entries) plus the
  group's delivery count of this entry, which XAUTOCLAIM increments: crash redeliveries count, and
  an entry that already had more than `max_deliveries` (a job that kills its worker) is
  dead-lettered without running again;
- on success acks; on failure schedules a retry with exponential backoff and full jitter, or
  dead-letters after `max_deliveries` — each as one script that also acks (`consumer.py`).

Stop (`stop()`, SIGTERM/SIGINT with `run(handle_signals=True)`): reading stops, running jobs get
`grace_period_s` to finish; those still running are then cancelled and left pending, unrenewed,
for another worker to reclaim. The consumer leaves the group only if it holds no pending entry.

Hook contract (`JobHooks`; every hook is awaited while the entry is pending and its claim renewed,
and the Redis transition follows only once the hook returned):

- `on_start(ctx)` before the handler; returning False skips the handler and acks (e.g. the row is
  already `succeeded`: a redelivery after a crash between the effect and the ack).
- `on_success(ctx)` after the handler, then the ack. A crash in between redelivers the job, so the
  handler's effect and the row's `succeeded` must commit together (or the handler be idempotent).
- `on_retry(ctx, delay_s, error)` then the retry script; `on_dead(ctx, error)` then the dead-letter
  script. The row never claims a state Redis has not reached yet *and lost*: a crash after the hook
  leaves the entry pending, and its redelivery runs the same steps again.
- A raising `on_start`/`on_success` counts as a failed delivery (retry or dead). A raising
  `on_retry`/`on_dead` (or Redis failing while finishing) leaves the entry pending and unrenewed:
  it is redelivered after `redelivery_timeout_s` and that delivery counts.

The client is the shared Redis's, with a socket timeout longer than `poll_interval_s` (the BLOCK
of every read). A worker needs about 20 connections whatever its concurrency: acks are coalesced
into one XACK per round trip and retry/dead-letter scripts run 16 at a time. Handlers must not
block the event loop for longer than `redelivery_timeout_s - renew_every_s` (renewals run on the
same loop); run CPU-heavy work in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from redis.exceptions import RedisError, ResponseError

from floodgate.jobs.backoff import backoff_delay
from floodgate.jobs.consumer import Delivery, StreamConsumer
from floodgate.jobs.entry import JobContext
from floodgate.jobs.hooks import JobHooks
from floodgate.jobs.metrics import JobMetrics, job_metrics
from floodgate.jobs.queue import DEFAULT_MAX_AGE_S, JobQueue
from floodgate.jobs.tracing import consumer_span, default_tracer
from floodgate.telemetry.logs import LOG_FIELDS

logger = logging.getLogger("floodgate.jobs")

Handler = Callable[[JobContext], Awaitable[None]]
_ERROR_PAUSE_S: Final = 1.0  # after a failed loop step (Redis unreachable): do not spin
# Retry/dead-letter scripts in flight at once: bounds the connections a burst of failures takes
# (redis-py's pool raises past its size, 100 by default, rather than wait).
_FINISHING_IN_PARALLEL: Final = 16
_CANCEL_WAIT_S: Final = 5.0  # at shutdown, for cancelled jobs to unwind


class UnknownJobType(LookupError):
    """No handler for an entry's type (e.g. a newer producer during a rolling deploy): a failed
    delivery like any other, so another worker version may still run it before it dies."""


def default_consumer_name() -> str:
    """`<host>-<pid>`: the pod name in Kubernetes, one consumer per process."""
    return f"{socket.gethostname()}-{os.getpid()}"


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class _Running:
    delivery: Delivery
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    released: bool = False  # given up at shutdown: left pending, no longer renewed


class Worker:
    """Runs `handlers[ctx.type](ctx)` for the entries of `queue`; see the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        handlers: Mapping[str, Handler],
        *,
        queue: str = "default",
        consumer_name: str | None = None,
        concurrency: int = 10,
        redelivery_timeout_s: float = 30.0,
        renew_every_s: float | None = None,
        reclaim_every_s: float | None = None,
        max_deliveries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        grace_period_s: float = 20.0,
        poll_interval_s: float = 0.25,
        stats_every_s: float = 5.0,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        hooks: JobHooks | None = None,
        metrics: JobMetrics | None = None,
        tracer: trace.Tracer | None = None,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        renew_every_s = redelivery_timeout_s / 3 if renew_every_s is None else renew_every_s
        if concurrency < 1 or max_deliveries < 1:
            raise ValueError("concurrency and max_deliveries must be at least 1")
        if not 0 < renew_every_s <= redelivery_timeout_s / 2:
            # Two renewals per timeout at least: one late renewal must not lose a running job.
            raise ValueError("renew_every_s must be in (0, redelivery_timeout_s / 2]")
        socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout is not None and socket_timeout <= poll_interval_s:
            # XREADGROUP blocks for poll_interval_s: a shorter socket timeout fails every idle read.
            raise ValueError("the client's socket timeout must exceed poll_interval_s")
        self.queue = JobQueue(redis, queue, max_age_s=max_age_s)
        self.consumer = StreamConsumer(self.queue, consumer_name or default_consumer_name())
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.redelivery_timeout_s = redelivery_timeout_s
        self.renew_every_s = renew_every_s
        self.reclaim_every_s = (
            redelivery_timeout_s / 4 if reclaim_every_s is None else reclaim_every_s
        )
        self.max_deliveries = max_deliveries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.grace_period_s = grace_period_s
        self.poll_interval_s = poll_interval_s
        self.stats_every_s = stats_every_s
        self.hooks = hooks if hooks is not None else JobHooks()
        self.metrics = metrics if metrics is not None else job_metrics()
        self._tracer = tracer
        self._random_unit = random_unit
        self._running: dict[str, _Running] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._finishing = asyncio.Semaphore(_FINISHING_IN_PARALLEL)
        # Ends the background tasks. An event, not cancellation: a cancel arriving during a Redis
        # call can surface as a Redis error, which the loops survive by design.
        self._halt = asyncio.Event()
        self._next_promotion = 0.0
        self._next_reclaim = 0.0
        self._started = False
        self.last_step_at = time.monotonic()  # for a liveness probe: the loop is not stuck

    @property
    def name(self) -> str:
        return self.consumer.name

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stop(self) -> None:
        """Ask `run()` to stop reading and shut down (safe from a signal handler)."""
        self._stopping.set()
        self._slot_freed.set()

    async def run(self, *, handle_signals: bool = False) -> None:
        """Consume until `stop()` (or SIGTERM/SIGINT when `handle_signals`), then shut down."""
        if self._started:
            raise RuntimeError("a Worker runs once")
        self._started = True
        if self._tracer is None:
            self._tracer = default_tracer()
        await self.queue.ensure_group()
        warning = await self.queue.check_noeviction()
        if warning is not None:
            logger.warning(warning, extra={"queue": self.queue.name})
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for signum in signals:
            loop.add_signal_handler(signum, self.stop)
        background = [asyncio.create_task(self._renew_forever(), name="jobs-renew")]
        if self.stats_every_s > 0:
            background.append(asyncio.create_task(self._publish_forever(), name="jobs-stats"))
        logger.info(
            "worker started",
            extra={
                "queue": self.queue.name,
                "consumer": self.name,
                "concurrency": self.concurrency,
            },
        )
        try:
            await self._consume()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            await self._shut_down(background)

    # --- the loop ------------------------------------------------------------------------------

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            self.last_step_at = time.monotonic()
            try:
                await self._step()
            except RedisError as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # The stream or group vanished (Redis restarted without persistence).
                    with contextlib.suppress(RedisError):
                        await self.queue.ensure_group()
                logger.warning(
                    "job queue step failed: %s", describe(exc), extra={"queue": self.queue.name}
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ERROR_PAUSE_S):
                        await self._stopping.wait()

    async def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_promotion:
            self._next_promotion = now + self.poll_interval_s
            await self.queue.promote_due()
        free = self.concurrency - len(self._running)
        if free > 0 and now >= self._next_reclaim:
            self._next_reclaim = now + self.reclaim_every_s
            free -= await self._reclaim(free)
        if free <= 0:
            await self._wait_for_slot()
            return
        for delivery in await self.consumer.read(free, int(self.poll_interval_s * 1000)):
            self._start(delivery)

    async def _reclaim(self, free: int) -> int:
        reclaimed = await self.consumer.reclaim(int(self.redelivery_timeout_s * 1000), free)
        if reclaimed.trimmed:
            logger.error(
                "%d pending job entries were trimmed from the stream before being acknowledged "
                "(max_age_s shorter than the backlog?); the database reconciler must re-enqueue",
                len(reclaimed.trimmed),
                extra={"queue": self.queue.name, "entries": reclaimed.trimmed[:20]},
            )
        # One of our own running jobs whose renewals came late: the claim just renewed it. Running
        # it a second time here would be the very duplicate renewal exists to prevent.
        deliveries = [d for d in reclaimed.deliveries if d.entry_id not in self._running]
        if deliveries:
            self.metrics.redeliveries.labels(self.queue.name).inc(len(deliveries))
            logger.info(
                "reclaimed %d abandoned job entries",
                len(deliveries),
                extra={"queue": self.queue.name, "consumer": self.name},
            )
        for delivery in deliveries:
            self._start(delivery)
        return len(deliveries)

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        if len(self._running) < self.concurrency or self._stopping.is_set():
            return
        # Bounded so that promotion of delayed entries goes on while every slot is busy.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval_s):
                await self._slot_freed.wait()

    def _start(self, delivery: Delivery) -> None:
        entry = delivery.entry
        ctx = JobContext(
            job_id=entry.job_id,
            type=entry.job_type,
            attempt=entry.attempt + delivery.times_delivered,
            traceparent=entry.traceparent,
            entry_id=delivery.entry_id,
            queue=self.queue.name,
            enqueued_at=entry.enqueued_at_ms / 1000,
        )
        running = _Running(delivery, ctx)
        self._running[delivery.entry_id] = running
        running.task = asyncio.create_task(self._process(running), name=f"job {entry.job_id}")

    # --- one delivery --------------------------------------------------------------------------

    async def _process(self, running: _Running) -> None:
        ctx = running.ctx
        # This task's own context: every line logged while it runs names the job.
        LOG_FIELDS.set({"job_id": ctx.job_id, "job_type": ctx.type, "job_attempt": ctx.attempt})
        try:
            with consumer_span(self._tracer, self.queue.keys, ctx) as span:
                await self._deliver(running, span)
        except Exception as exc:
            # A hook or Redis failed while finishing: the entry stays pending, no longer renewed,
            # and is redelivered after the redelivery timeout.
            logger.warning(
                "job %s: could not finish its delivery (%s); it will be redelivered",
                ctx.job_id,
                describe(exc),
                extra={"job_id": ctx.job_id, "job_type": ctx.type, "entry_id": ctx.entry_id},
            )
        finally:
            del self._running[ctx.entry_id]
            self._slot_freed.set()

    async def _deliver(self, running: _Running, span: trace.Span | None) -> None:
        ctx = running.ctx
        series = self.metrics.for_type(ctx.type)
        if ctx.attempt > self.max_deliveries:
            await self._bury(
                running,
                f"delivered {ctx.attempt} times without finishing (its workers died running it)",
            )
            return
        if running.delivery.times_delivered == 1:
            series.queue_wait.observe(max(time.time() - ctx.enqueued_at, 0.0))
        started = time.perf_counter()
        try:
            if await self.hooks.on_start(ctx) is False:
                await self.consumer.ack(ctx.entry_id)
                return
            handler = self.handlers.get(ctx.type)
            if handler is None:
                raise UnknownJobType(f"no handler for job type {ctx.type!r}")
            await handler(ctx)
            await self.hooks.on_success(ctx)
        except Exception as exc:
            series.duration.observe(time.perf_counter() - started)
            if span is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, describe(exc)))
            if not running.released:
                await self._failed(running, describe(exc))
            return
        series.duration.observe(time.perf_counter() - started)
        if running.released:
            return  # a handler that ignored the shutdown's cancel: the entry is a reclaimer's now
        await self.consumer.ack(ctx.entry_id)
        series.succeeded.inc()

    async def _failed(self, running: _Running, error: str) -> None:
        ctx = running.ctx
        if ctx.attempt >= self.max_deliveries:
            await self._bury(running, error)
            return
        delay_s = backoff_delay(
            ctx.attempt,
            base_s=self.backoff_base_s,
            max_s=self.backoff_max_s,
            random_unit=self._random_unit,
        )
        await self.hooks.on_retry(ctx, delay_s, error)
        async with self._finishing:
            scheduled = await self.consumer.retry_later(running.delivery, ctx.attempt, delay_s)
        if scheduled:
            self.metrics.for_type(ctx.type).retried.inc()
            logger.info(
                "job %s failed (delivery %d of %d), retry in %.2fs: %s",
                ctx.job_id,
                ctx.attempt,
                self.max_deliveries,
                delay_s,
                error,
                extra={"job_id": ctx.job_id, "job_type": ctx.type},
            )
        else:
            self._claim_lost(ctx)

    async def _bury(self, running: _Running, error: str) -> None:
        ctx = running.ctx
        await self.hooks.on_dead(ctx, error)
        async with self._finishing:
            buried = await self.consumer.dead_letter(running.delivery, ctx.attempt, error)
        if buried:
            self.metrics.for_type(ctx.type).dead.inc()
            logger.warning(
                "job %s dead-lettered after %d deliveries: %s",
                ctx.job_id,
                ctx.attempt,
                error,
                extra={"job_id": ctx.job_id, "job_type": ctx.type},
            )
        else:
            self._claim_lost(ctx)

    def _claim_lost(self, ctx: JobContext) -> None:
        # Our renewals came too late (loop blocked, Redis unreachable) and another consumer
        # reclaimed the entry: its delivery decides the job now.
        logger.warning(
            "job %s: entry no longer pending for this consumer; left to its new owner",
            ctx.job_id,
            extra={"job_id": ctx.job_id, "entry_id": ctx.entry_id},
        )

    # --- background tasks ----------------------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the background tasks must end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._halt.wait()
        return self._halt.is_set()

    async def _renew_forever(self) -> None:
        while not await self._pause(self.renew_every_s):
            ids = [entry_id for entry_id, r in self._running.items() if not r.released]
            if not ids:
                continue
            try:
                lost = await self.consumer.renew(ids)
            except Exception as exc:  # this task must outlive any failure, or jobs get stolen
                logger.warning("renewing job claims failed: %s", describe(exc))
                continue
            for entry_id in lost:
                running = self._running.get(entry_id)
                if running is not None and not running.released:
                    self._claim_lost(running.ctx)

    async def _publish_forever(self) -> None:
        while True:
            try:
                self.metrics.publish(await self.queue.stats())
            except Exception as exc:  # metrics must never stop the worker
                logger.debug("queue stats failed: %s", describe(exc))
            if await self._pause(self.stats_every_s):
                return

    async def _shut_down(self, background: list[asyncio.Task[None]]) -> None:
        self._stopping.set()
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.grace_period_s)
        unfinished = list(self._running.values())
        for running in unfinished:
            running.released = True
        self._halt.set()
        # Cancel rather than let them run unrenewed: once reclaimed elsewhere they would run twice.
        for running in unfinished:
            if running.task is not None:
                running.task.cancel()
        ending = {*background, *(r.task for r in unfinished if r.task is not None)}
        if ending:
            _, stuck = await asyncio.wait(ending, timeout=_CANCEL_WAIT_S)
            if stuck:
                logger.warning("%d tasks ignored the shutdown; abandoned", len(stuck))
        if unfinished:
            logger.warning(
                "%d jobs still running after the %.1fs grace period: left pending for redelivery",
                len(unfinished),
                self.grace_period_s,
                extra={"queue": self.queue.name, "jobs": [r.ctx.job_id for r in unfinished][:20]},
            )
        try:
            left = await self.consumer.leave()
        except RedisError as exc:
            logger.warning("could not leave the consumer group: %s", describe(exc))
            return
        logger.info(
            "worker stopped" if left else "worker stopped; its pending entries await a reclaimer",
            extra={"queue": self.queue.name, "consumer": self.name},
        )
