"""Renewed claims and reclaims: a long job runs once, a killed worker's job is redelivered fast."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from floodgate.jobs import JobContext, JobMetrics, JobQueue, Worker
from tests.integration.jobs.conftest import FAST, running, wait_until
from tests.support.services import RedisServer

pytestmark = pytest.mark.redis

CRASH_WORKER = Path(__file__).with_name("crash_worker.py")


async def test_a_job_longer_than_the_redelivery_timeout_runs_exactly_once(
    client: aioredis.Redis, queue_name: str, metrics: JobMetrics
) -> None:
    starts: collections.Counter[str] = collections.Counter()
    finished: set[str] = set()

    async def long_job(ctx: JobContext) -> None:
        starts[ctx.job_id] += 1
        await asyncio.sleep(2.0)  # four redelivery timeouts
        finished.add(ctx.job_id)

    queue = JobQueue(client, queue_name)
    settings = {**FAST, "redelivery_timeout_s": 0.5}
    workers = [
        Worker(
            client,
            {"long": long_job},
            queue=queue_name,
            consumer_name=f"w{n}",
            concurrency=2,
            metrics=metrics,
            **settings,
        )
        for n in range(2)
    ]
    for n in range(3):
        await queue.enqueue(f"job-{n}", "long")
    async with running(workers[0]), running(workers[1]):
        await wait_until(lambda: len(finished) == 3, timeout=10, message="all three finished")
        # Both workers kept reclaiming every 0.125 s meanwhile; give them one more sweep.
        await asyncio.sleep(0.3)
    assert starts == {"job-0": 1, "job-1": 1, "job-2": 1}
    redeliveries = metrics.registry.get_sample_value(
        "floodgate_job_redeliveries_total", {"queue": queue_name}
    )
    assert redeliveries in (None, 0.0)
    assert (await queue.stats()).pending == 0


async def test_a_killed_workers_job_is_reclaimed_within_the_redelivery_timeout(
    client: aioredis.Redis, queue_name: str, redis_server: RedisServer, metrics: JobMetrics
) -> None:
    timeout_s = 0.5
    marker = f"{queue_name}:started"
    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "sleepy")
    argv = [str(CRASH_WORKER), redis_server.url, queue_name, marker, str(timeout_s), "3600"]
    doomed = subprocess.Popen([sys.executable, *argv])
    survivor_runs: list[tuple[int, float]] = []

    async def quick(ctx: JobContext) -> None:
        survivor_runs.append((ctx.attempt, time.monotonic()))

    survivor = Worker(
        client,
        {"sleepy": quick},
        queue=queue_name,
        consumer_name="survivor",
        metrics=metrics,
        **{**FAST, "redelivery_timeout_s": timeout_s},
    )

    async def doomed_started() -> bool:
        assert doomed.poll() is None, "the doomed worker exited early"
        return bool(await client.lrange(marker, 0, -1))

    try:
        await wait_until(doomed_started, timeout=20, message="the doomed worker started the job")
        async with running(survivor):
            # While the doomed worker lives it renews its claim: three timeouts, no steal.
            await asyncio.sleep(3 * timeout_s)
            assert survivor_runs == []

            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=5)
            killed_at = time.monotonic()
            await wait_until(lambda: bool(survivor_runs), timeout=5, message="reclaimed")
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(timeout=5)

    attempt, reclaimed_at = survivor_runs[0]
    assert await client.lrange(marker, 0, -1) == [b"job-1:1"]
    assert attempt == 2  # the delivery that died counts
    # The entry was idle since the last renewal before the kill: reclaimed after at most the
    # timeout plus one reclaim sweep (0.125 s), with slack for a busy machine.
    assert reclaimed_at - killed_at < timeout_s + 0.5
    redeliveries = metrics.registry.get_sample_value(
        "floodgate_job_redeliveries_total", {"queue": queue_name}
    )
    assert redeliveries == 1
    await wait_until(lambda: _done(queue), timeout=5, message="the reclaimed job was acked")


async def test_sigterm_finishes_the_running_job_and_leaves_the_group(
    client: aioredis.Redis, queue_name: str, redis_server: RedisServer
) -> None:
    marker = f"{queue_name}:marks"
    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "sleepy")
    worker = subprocess.Popen(
        [sys.executable, str(CRASH_WORKER), redis_server.url, queue_name, marker, "0.5", "0.5"]
    )
    try:

        async def started() -> bool:
            assert worker.poll() is None, "the worker exited early"
            return bool(await client.lrange(marker, 0, -1))

        await wait_until(started, timeout=20, message="the worker started the job")
        worker.send_signal(signal.SIGTERM)
        await wait_until(lambda: worker.poll() is not None, timeout=10, message="it exited")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=5)
    assert worker.returncode == 0
    assert await client.lrange(marker, 0, -1) == [b"job-1:1", b"job-1:done"]
    stats = await queue.stats()
    assert (stats.pending, stats.lag) == (0, 0)
    consumers = await client.xinfo_consumers(queue.keys.stream, queue.keys.group)
    assert consumers == []  # it left the group


async def test_an_entry_that_keeps_killing_workers_is_dead_lettered_without_running(
    client: aioredis.Redis, queue_name: str
) -> None:
    queue = JobQueue(client, queue_name)
    await queue.ensure_group()
    await queue.enqueue("poison", "t")
    keys = queue.keys
    # Three consumers "crashed" with it: read once, then reclaimed twice, never acked.
    await client.xreadgroup(keys.group, "dead-1", {keys.stream: ">"}, count=1)
    for name in ("dead-2", "dead-3"):
        await client.xautoclaim(keys.stream, keys.group, name, 0, "0-0")
    ran: list[int] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.attempt)

    worker = Worker(client, {"t": handler}, queue=queue_name, max_deliveries=3, **FAST)
    async with running(worker):
        await wait_until(
            lambda: _dead_letters(queue, 1), timeout=5, message="the poison entry was buried"
        )
    assert ran == []
    [dead] = await queue.dead_letters()
    assert dead.attempts == 4
    assert "without finishing" in dead.error


async def _done(queue: JobQueue) -> bool:
    stats = await queue.stats()
    return stats.pending == 0 and stats.lag == 0


async def _dead_letters(queue: JobQueue, count: int) -> bool:
    return (await queue.stats()).dead_letters == count
