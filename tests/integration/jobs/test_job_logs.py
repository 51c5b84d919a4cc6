"""Every line logged while a job runs names the job (id, type, attempt) and carries the trace of
the request that enqueued it; lines outside a job carry neither."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from floodgate.jobs import JobContext, JobMetrics, JobQueue, Worker
from tests.integration.jobs.conftest import FAST, running, wait_until
from tests.support.logs import json_lines, json_log_stream

pytestmark = pytest.mark.redis
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with json_log_stream() as out:
        yield out


async def test_lines_logged_inside_a_job_name_it_and_its_trace(
    client: aioredis.Redis, queue_name: str, metrics: JobMetrics, stream: io.StringIO
) -> None:
    done: list[str] = []
    log = logging.getLogger("tests.job")

    async def talk(ctx: JobContext) -> None:
        log.info("working on it")
        done.append(ctx.job_id)

    worker = Worker(client, {"talk": talk}, queue=queue_name, metrics=metrics, tracer=None, **FAST)
    async with running(worker):
        await JobQueue(client, queue_name).enqueue("job-7", "talk", traceparent=TRACEPARENT)
        await wait_until(lambda: done == ["job-7"], timeout=10, message="the job ran")
        log.info("outside any job")
    lines = json_lines(stream)
    inside = next(entry for entry in lines if entry["msg"] == "working on it")
    assert inside["job_id"] == "job-7"
    assert inside["job_type"] == "talk"
    assert inside["job_attempt"] == 1
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # the producer's trace
    outside = next(entry for entry in lines if entry["msg"] == "outside any job")
    assert "job_id" not in outside
    assert "trace_id" not in outside
