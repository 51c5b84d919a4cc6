"""Builders for the job-queue tests: a client on the session Redis, a queue name of their own per
test (so tests sharing one Redis never see each other's entries), and workers run as tasks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from floodgate.jobs import JobMetrics, Worker, job_metrics
from tests.support.services import RedisServer

# Fast settings for tests; each test overrides what it is about.
FAST: dict[str, Any] = {
    "redelivery_timeout_s": 0.5,
    "poll_interval_s": 0.05,
    "stats_every_s": 0,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "grace_period_s": 5.0,
}


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url, socket_timeout=5.0)
    yield redis
    await redis.aclose()


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def metrics() -> JobMetrics:
    return job_metrics(CollectorRegistry())


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float, message: str = ""
) -> float:
    """Poll `condition` until true; returns the seconds it took, fails the test at the deadline."""
    started = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"not true after {timeout}s: {message}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """The worker's run() as a task; stopped (gracefully) and awaited on exit."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=worker.grace_period_s + 5)
