"""Enqueue → one run → acked; stats; metrics; delayed entries; trimming by age; traces."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from floodgate.jobs import JobContext, JobMetrics, JobQueue, Worker
from floodgate.jobs.entry import entry_id_ms
from tests.integration.jobs.conftest import FAST, running, wait_until

pytestmark = pytest.mark.redis


async def test_a_job_runs_once_is_acked_and_counted(
    client: aioredis.Redis, queue_name: str, metrics: JobMetrics
) -> None:
    runs: list[JobContext] = []

    async def handler(ctx: JobContext) -> None:
        runs.append(ctx)

    queue = JobQueue(client, queue_name)
    entry_id = await queue.enqueue("job-1", "noop")
    worker = Worker(client, {"noop": handler}, queue=queue_name, metrics=metrics, **FAST)
    async with running(worker):
        await wait_until(lambda: len(runs) == 1, timeout=5, message="the job ran")
        await wait_until(lambda: worker.in_flight == 0, timeout=5, message="delivery finished")

    assert len(runs) == 1
    ctx = runs[0]
    assert (ctx.job_id, ctx.type, ctx.attempt, ctx.entry_id) == ("job-1", "noop", 1, entry_id)
    stats = await queue.stats()
    assert (stats.lag, stats.pending, stats.dead_letters, stats.delayed) == (0, 0, 0, 0)
    assert stats.length == 1  # acked, not deleted: the entry stays until trimmed by age
    registry = metrics.registry
    done = {"type": "noop", "outcome": "succeeded"}
    assert registry.get_sample_value("floodgate_jobs_completed_total", done) == 1
    assert registry.get_sample_value("floodgate_job_duration_seconds_count", {"type": "noop"}) == 1
    wait = registry.get_sample_value("floodgate_job_queue_wait_seconds_count", {"type": "noop"})
    assert wait == 1


async def test_stats_report_lag_pending_and_ages(client: aioredis.Redis, queue_name: str) -> None:
    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await queue.ensure_group()  # idempotent (BUSYGROUP ignored)
    for n in range(3):
        await queue.enqueue(f"job-{n}", "noop")
    keys = queue.keys
    await client.xreadgroup(keys.group, "someone", {keys.stream: ">"}, count=1)
    server_ms = await _server_ms(client)
    await wait_until(
        lambda: _later(client, server_ms + 20), timeout=2, message="20 ms pass on Redis"
    )

    stats = await queue.stats()
    assert (stats.length, stats.lag, stats.pending) == (3, 2, 1)
    assert stats.oldest_pending_age_s >= 0.02
    assert stats.oldest_undelivered_age_s >= 0.02
    assert stats.oldest_age_s == max(stats.oldest_pending_age_s, stats.oldest_undelivered_age_s)


async def test_stats_of_a_queue_that_does_not_exist_yet(
    client: aioredis.Redis, queue_name: str
) -> None:
    stats = await JobQueue(client, queue_name).stats()
    assert (stats.length, stats.lag, stats.pending, stats.oldest_age_s) == (0, 0, 0, 0.0)


async def test_the_worker_publishes_queue_gauges(
    client: aioredis.Redis, queue_name: str, metrics: JobMetrics
) -> None:
    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "noop")
    registry = metrics.registry
    labels = {"queue": queue_name}

    async def handler(ctx: JobContext) -> None:
        return None

    settings = {**FAST, "stats_every_s": 0.05}
    worker = Worker(client, {"noop": handler}, queue=queue_name, metrics=metrics, **settings)
    async with running(worker):
        await wait_until(
            lambda: (
                registry.get_sample_value("floodgate_queue_pending", labels) == 0
                and registry.get_sample_value("floodgate_queue_lag", labels) == 0
            ),
            timeout=5,
            message="gauges published",
        )
    assert registry.get_sample_value("floodgate_queue_dead_letter", labels) == 0
    assert registry.get_sample_value("floodgate_queue_oldest_age_seconds", labels) == 0


async def test_a_delayed_job_becomes_visible_after_its_delay(
    client: aioredis.Redis, queue_name: str
) -> None:
    started_at: list[float] = []

    async def handler(ctx: JobContext) -> None:
        started_at.append(time.time())

    queue = JobQueue(client, queue_name)
    worker = Worker(client, {"later": handler}, queue=queue_name, **FAST)
    async with running(worker):
        enqueued_at = time.time()
        assert await queue.enqueue("job-1", "later", delay_s=0.6) == ""
        stats = await queue.stats()
        assert (stats.delayed, stats.lag, stats.length) == (1, 0, 0)
        await wait_until(lambda: bool(started_at), timeout=5, message="the delayed job ran")
    assert started_at[0] - enqueued_at >= 0.6 - 0.002  # ms resolution of the due time
    assert started_at[0] - enqueued_at < 0.6 + 1.0
    assert (await queue.stats()).delayed == 0


async def test_trimming_by_age_keeps_every_entry_newer_than_max_age(
    client: aioredis.Redis, queue_name: str
) -> None:
    frozen: list[float] = []

    def clock() -> float:
        return frozen[0] if frozen else time.time()

    queue = JobQueue(client, queue_name, max_age_s=60.0, clock=clock)
    for n in range(250):
        await queue.enqueue(f"old-{n}", "noop")
    assert await client.xlen(queue.keys.stream) == 250  # all younger than 60 s: nothing trimmed
    last_old = (await client.xrevrange(queue.keys.stream, count=1))[0][0].decode()
    boundary_ms = entry_id_ms(last_old) + 1
    await wait_until(lambda: _later(client, boundary_ms), timeout=2, message="Redis clock moves")

    # Now is 60 s after the boundary: every entry before it is older than max_age.
    frozen.append(boundary_ms / 1000 + 60.0)
    new_ids = [await queue.enqueue(f"new-{n}", "noop") for n in range(10)]

    remaining = [e[0].decode() for e in await client.xrange(queue.keys.stream)]
    assert set(new_ids) <= set(remaining)
    assert all(entry_id_ms(entry_id) >= boundary_ms for entry_id in new_ids)
    # Approximate trimming drops whole radix-tree nodes (100 entries by default): the two full
    # nodes of old entries are gone, the node shared with the new ones stays.
    assert len(remaining) < 250


async def test_the_consumer_span_continues_the_producers_trace(
    client: aioredis.Redis, queue_name: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    seen: list[JobContext] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx)

    queue = JobQueue(client, queue_name, tracer=tracer)
    with tracer.start_as_current_span("POST /api/v1/messages:import") as request:
        entry_id = await queue.enqueue("job-1", "import")
    worker = Worker(client, {"import": handler}, queue=queue_name, tracer=tracer, **FAST)
    async with running(worker):
        await wait_until(lambda: bool(seen), timeout=5, message="the job ran")
        await wait_until(lambda: len(exporter.get_finished_spans()) == 3, timeout=5)

    spans = {span.name: span for span in exporter.get_finished_spans()}
    send, process = spans["send import"], spans["process import"]
    trace_id = request.get_span_context().trace_id
    assert send.kind == SpanKind.PRODUCER
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert process.kind == SpanKind.CONSUMER
    assert process.context is not None
    assert process.context.trace_id == trace_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert seen[0].traceparent is not None
    assert f"{trace_id:032x}" in seen[0].traceparent
    attributes = dict(process.attributes or {})
    assert attributes["messaging.system"] == "redis"
    assert attributes["messaging.destination.name"] == queue.keys.stream
    assert attributes["messaging.message.id"] == entry_id
    assert attributes["messaging.operation.type"] == "process"


async def test_an_explicit_traceparent_is_carried_as_given(
    client: aioredis.Redis, queue_name: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    seen: list[JobContext] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx)

    queue = JobQueue(client, queue_name, tracer=tracer)
    with tracer.start_as_current_span("caller's own producer span"):
        await queue.enqueue("job-1", "t", traceparent=given)
    async with running(Worker(client, {"t": handler}, queue=queue_name, tracer=tracer, **FAST)):
        await wait_until(lambda: len(exporter.get_finished_spans()) == 2, timeout=5)

    assert seen[0].traceparent == given
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == ["caller's own producer span", "process t"]  # no second PRODUCER span
    process = next(s for s in exporter.get_finished_spans() if s.name == "process t")
    assert process.parent is not None
    assert f"{process.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_without_a_trace_nothing_is_propagated(
    client: aioredis.Redis, queue_name: str
) -> None:
    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "noop")
    fields = (await client.xrange(queue.keys.stream))[0][1]
    assert b"traceparent" not in fields
    assert fields[b"id"] == b"job-1"
    assert fields[b"attempt"] == b"0"


async def _server_ms(client: aioredis.Redis) -> int:
    seconds, micros = await client.time()
    return seconds * 1000 + micros // 1000


async def _later(client: aioredis.Redis, ms: int) -> bool:
    return await _server_ms(client) > ms
