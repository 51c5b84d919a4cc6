"""stop() under load loses nothing; the concurrency bound holds."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from floodgate.jobs import JobContext, JobQueue, Worker
from tests.integration.jobs.conftest import FAST, running, wait_until

pytestmark = pytest.mark.redis


async def _enqueue(queue: JobQueue, count: int, job_type: str) -> None:
    pipe = queue.redis.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(queue.keys.stream, {"id": f"job-{n}", "type": job_type, "attempt": "0"})
    await pipe.execute()


async def _consumers(client: aioredis.Redis, queue: JobQueue) -> dict[str, int]:
    found = await client.xinfo_consumers(queue.keys.stream, queue.keys.group)
    return {c["name"].decode(): int(c["pending"]) for c in found}


async def test_a_graceful_stop_under_load_finishes_its_jobs_and_leaves_the_group(
    client: aioredis.Redis, queue_name: str
) -> None:
    completed: collections.Counter[str] = collections.Counter()
    rng = random.Random(1)

    async def noop(ctx: JobContext) -> None:
        await asyncio.sleep(rng.random() * 0.004)
        completed[ctx.job_id] += 1

    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await _enqueue(queue, 500, "noop")
    first, second = (
        Worker(client, {"noop": noop}, queue=queue_name, consumer_name=name, concurrency=8, **FAST)
        for name in ("first", "second")
    )
    async with running(second):
        first_task = asyncio.create_task(first.run())
        await wait_until(lambda: sum(completed.values()) >= 150, timeout=20, message="150 done")
        first.stop()
        await asyncio.wait_for(first_task, timeout=10)
        assert "first" not in await _consumers(client, queue)  # nothing pending: it left
        await wait_until(lambda: len(completed) == 500, timeout=30, message="all 500 done")
    assert set(completed.values()) == {1}
    stats = await queue.stats()
    assert (stats.lag, stats.pending) == (0, 0)


async def test_a_stop_whose_grace_runs_out_leaves_running_jobs_to_be_reclaimed(
    client: aioredis.Redis, queue_name: str
) -> None:
    completed: collections.Counter[str] = collections.Counter()
    cancelled: set[str] = set()
    attempts: dict[str, int] = {}
    sleeping: dict[str, set[str]] = {"first": set(), "second": set()}

    def slowish(worker: str) -> Callable[[JobContext], Awaitable[None]]:
        async def handler(ctx: JobContext) -> None:
            sleeping[worker].add(ctx.job_id)
            try:
                await asyncio.sleep(0.3)  # far longer than a read's BLOCK: running at the stop
            except asyncio.CancelledError:
                cancelled.add(ctx.job_id)
                raise
            finally:
                sleeping[worker].discard(ctx.job_id)
            completed[ctx.job_id] += 1
            attempts[ctx.job_id] = ctx.attempt

        return handler

    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await _enqueue(queue, 48, "slowish")
    settings = {**FAST, "grace_period_s": 0.0}
    first, second = (
        Worker(
            client, {"slowish": slowish(name)}, queue=queue_name, consumer_name=name,
            concurrency=8, **settings,
        )
        for name in ("first", "second")
    )  # fmt: skip
    async with running(second):
        first_task = asyncio.create_task(first.run())
        await wait_until(
            lambda: len(sleeping["first"]) >= 4, timeout=20, message="first runs handlers"
        )
        first.stop()
        await asyncio.wait_for(first_task, timeout=10)
        assert len(cancelled) >= 4, "the stop released running jobs"
        # Released entries stay pending under `first`, which therefore stays in the group.
        assert (await _consumers(client, queue)).get("first", 0) >= len(cancelled)
        await wait_until(lambda: len(completed) == 48, timeout=30, message="all 48 done")
    assert set(completed.values()) == {1}
    # Each released job was finished by a reclaimer, its aborted delivery counted.
    assert all(attempts[job_id] == 2 for job_id in cancelled)
    stats = await queue.stats()
    assert (stats.lag, stats.pending) == (0, 0)


async def test_never_more_jobs_in_flight_than_the_concurrency(
    client: aioredis.Redis, queue_name: str
) -> None:
    in_flight = 0
    peak = 0
    peak_pending = 0
    done = 0

    async def tracked(ctx: JobContext) -> None:
        nonlocal in_flight, peak, peak_pending, done
        in_flight += 1
        peak = max(peak, in_flight)
        # What the group has handed this consumer: never more than it has slots (no prefetch).
        summary = await client.xpending(queue.keys.stream, queue.keys.group)
        peak_pending = max(peak_pending, *(int(c["pending"]) for c in summary["consumers"]))
        await asyncio.sleep(0.03)
        in_flight -= 1
        done += 1

    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await _enqueue(queue, 30, "tracked")
    worker = Worker(client, {"tracked": tracked}, queue=queue_name, concurrency=3, **FAST)
    async with running(worker):
        await wait_until(lambda: done == 30, timeout=10, message="all 30 done")
    assert peak == 3
    assert peak_pending == 3
    assert (await queue.stats()).pending == 0


async def test_a_concurrency_beyond_the_connection_pool_loses_nothing(
    client: aioredis.Redis, queue_name: str
) -> None:
    """redis-py's pool holds 100 connections and raises past that: 300 jobs finishing together
    (successes and failures) must share a few."""
    completed: collections.Counter[str] = collections.Counter()

    async def half_fail(ctx: JobContext) -> None:
        await asyncio.sleep(0.01)
        completed[ctx.job_id] += 1
        if int(ctx.job_id.removeprefix("job-")) % 2:
            raise RuntimeError("odd")

    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await _enqueue(queue, 600, "half")
    worker = Worker(
        client,
        {"half": half_fail},
        queue=queue_name,
        concurrency=300,
        max_deliveries=1,
        **FAST,
    )
    async with running(worker):

        async def all_settled() -> bool:
            stats = await queue.stats()
            return (stats.lag, stats.pending, stats.dead_letters) == (0, 0, 300)

        await wait_until(all_settled, timeout=20, message="300 acked, 300 dead-lettered")
    assert len(completed) == 600
    assert set(completed.values()) == {1}
    assert client.connection_pool.max_connections == 100
