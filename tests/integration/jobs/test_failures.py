"""Failed deliveries: retries with backoff, the dead-letter stream, redrive, and the hooks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from floodgate.jobs import JobContext, JobHooks, JobMetrics, JobQueue, Worker
from tests.integration.jobs.conftest import FAST, running, wait_until

pytestmark = pytest.mark.redis


@dataclass
class RecordingHooks(JobHooks):
    events: list[tuple[str, int, object]] = field(default_factory=list)
    skip: set[str] = field(default_factory=set)

    async def on_start(self, ctx: JobContext) -> bool | None:
        self.events.append(("start", ctx.attempt, None))
        return False if ctx.job_id in self.skip else None

    async def on_success(self, ctx: JobContext) -> None:
        self.events.append(("success", ctx.attempt, None))

    async def on_retry(self, ctx: JobContext, delay_s: float, error: str) -> None:
        self.events.append(("retry", ctx.attempt, delay_s))

    async def on_dead(self, ctx: JobContext, error: str) -> None:
        self.events.append(("dead", ctx.attempt, error))


async def test_a_failing_job_is_retried_with_backoff_then_dead_lettered_then_redriven(
    client: aioredis.Redis, queue_name: str, metrics: JobMetrics
) -> None:
    runs: list[tuple[int, float]] = []
    failing = True

    async def flaky(ctx: JobContext) -> None:
        runs.append((ctx.attempt, time.monotonic()))
        if failing:
            raise RuntimeError(f"boom {ctx.attempt}")

    hooks = RecordingHooks()
    queue = JobQueue(client, queue_name)
    settings = {**FAST, "backoff_base_s": 0.2, "backoff_max_s": 1.0}
    worker = Worker(
        client,
        {"flaky": flaky},
        queue=queue_name,
        max_deliveries=3,
        hooks=hooks,
        metrics=metrics,
        random_unit=lambda: 1.0,  # the top of each jitter range: the delays are the ceilings
        **settings,
    )
    await queue.enqueue("job-1", "flaky")
    async with running(worker):
        await wait_until(
            lambda: _dead_count(queue), timeout=10, message="the job was dead-lettered"
        )
        assert [attempt for attempt, _ in runs] == [1, 2, 3]
        # Each retry waited at least its backoff (0.2 s, then 0.4 s).
        assert runs[1][1] - runs[0][1] >= 0.2
        assert runs[2][1] - runs[1][1] >= 0.4
        assert hooks.events == [
            ("start", 1, None),
            ("retry", 1, 0.2),
            ("start", 2, None),
            ("retry", 2, 0.4),
            ("start", 3, None),
            ("dead", 3, "RuntimeError: boom 3"),
        ]
        [dead] = await queue.dead_letters()
        assert (dead.job_id, dead.job_type, dead.attempts) == ("job-1", "flaky", 3)
        assert dead.error == "RuntimeError: boom 3"
        assert dead.failed_at > time.time() - 10
        stats = await queue.stats()
        assert (stats.pending, stats.delayed, stats.lag, stats.dead_letters) == (0, 0, 0, 1)

        failing = False
        assert await queue.redrive([dead.entry_id, "0-1"]) == 1  # an unknown id is skipped
        await wait_until(lambda: len(runs) == 4, timeout=5, message="the redriven job ran")
        assert runs[3][0] == 1  # attempt reset by the redrive
        await wait_until(lambda: hooks.events[-1][0] == "success", timeout=5)
        assert await queue.dead_letters() == []

    registry = metrics.registry
    for outcome, expected in (("retried", 2), ("dead", 1), ("succeeded", 1)):
        labels = {"type": "flaky", "outcome": outcome}
        assert registry.get_sample_value("floodgate_jobs_completed_total", labels) == expected


async def test_unknown_types_fail_like_any_error_and_redrive_all(
    client: aioredis.Redis, queue_name: str
) -> None:
    queue = JobQueue(client, queue_name)
    worker = Worker(client, {}, queue=queue_name, max_deliveries=2, **FAST)
    for n in range(3):
        await queue.enqueue(f"job-{n}", "from-the-future")
    async with running(worker):
        await wait_until(lambda: _dead_count(queue, 3), timeout=10, message="all dead-lettered")
    dead = await queue.dead_letters()
    assert {d.job_id for d in dead} == {"job-0", "job-1", "job-2"}
    assert all(d.attempts == 2 and d.error.startswith("UnknownJobType") for d in dead)

    assert await queue.redrive("all") == 3
    stats = await queue.stats()
    assert (stats.dead_letters, stats.lag) == (0, 3)
    fields = (await client.xrevrange(queue.keys.stream, count=1))[0][1]
    assert fields[b"attempt"] == b"0"


async def test_on_start_false_skips_the_handler_and_acks(
    client: aioredis.Redis, queue_name: str
) -> None:
    ran: list[str] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    hooks = RecordingHooks(skip={"done-already"})
    queue = JobQueue(client, queue_name)
    await queue.enqueue("done-already", "t")
    await queue.enqueue("fresh", "t")
    async with running(Worker(client, {"t": handler}, queue=queue_name, hooks=hooks, **FAST)):
        await wait_until(lambda: ran == ["fresh"], timeout=5, message="the fresh job ran")
        await wait_until(lambda: _nothing_pending(queue), timeout=5, message="both acked")
    assert ran == ["fresh"]


async def test_a_raising_on_success_hook_counts_as_a_failed_delivery(
    client: aioredis.Redis, queue_name: str
) -> None:
    attempts: list[int] = []

    class FlakyDatabase(JobHooks):
        async def on_success(self, ctx: JobContext) -> None:
            if ctx.attempt == 1:
                raise ConnectionError("database went away")

    async def handler(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)

    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "t")
    worker = Worker(client, {"t": handler}, queue=queue_name, hooks=FlakyDatabase(), **FAST)
    async with running(worker):
        await wait_until(lambda: attempts == [1, 2], timeout=5, message="retried once")
        await wait_until(lambda: _nothing_pending(queue), timeout=5, message="acked")


async def _dead_count(queue: JobQueue, count: int = 1) -> bool:
    return (await queue.stats()).dead_letters == count


async def _nothing_pending(queue: JobQueue) -> bool:
    stats = await queue.stats()
    return stats.pending == 0 and stats.lag == 0 and stats.delayed == 0


async def test_hooks_hand_the_handler_per_delivery_state(
    client: aioredis.Redis, queue_name: str
) -> None:
    seen: list[object] = []

    class Claiming(JobHooks):
        async def on_start(self, ctx: JobContext) -> bool | None:
            ctx.state["fence"] = ctx.attempt  # what a row claim would hand the handler
            return None

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.state["fence"])

    queue = JobQueue(client, queue_name)
    await queue.enqueue("job-1", "t")
    async with running(Worker(client, {"t": handler}, queue=queue_name, hooks=Claiming(), **FAST)):
        await wait_until(lambda: seen == [1], timeout=5, message="the handler saw the state")
