"""`floodgate worker --metrics-port`: the process Prometheus scrapes and the kubelet probes. A real
worker runs a real import job against PostgreSQL and Redis; its /metrics then shows the job and
the queue, /healthz answers, and SIGTERM ends it cleanly (a JSON line says so)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.jobs import JobQueue
from floodgate.jobs.store import JobStore
from tests.support.services import PostgresServer, RedisServer, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
FLOODGATE = Path(sys.executable).with_name("floodgate")


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format (labels matched as a subset)."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


async def _get(url: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            try:
                return await http.get(url, timeout=2.0)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def test_the_worker_serves_its_metrics_and_health_and_logs_the_job(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    name = f"a_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    engine = create_async_engine(url)
    redis = aioredis.from_url(redis_server.url, socket_timeout=5.0)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "FLOODGATE_DATABASE_URL": url,
        "FLOODGATE_LIMITS_URL": redis_server.url,
        "FLOODGATE_WORKER_METRICS_PORT": str(port),
        "FLOODGATE_GRACEFUL_TIMEOUT_S": "5",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(FLOODGATE), "worker", "--queues", name], env=env, stdout=out, stderr=out
        )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (id, name, email, created_at) "
                     "VALUES (1, 'a', 'a@admin.example', now())")
            )  # fmt: skip
        store = JobStore(engine)
        job = await store.create(
            queue=name, type="messages.import", args={"items": [[1, "x"], [2, "y"]]}, total=2
        )
        await JobQueue(redis, name).enqueue(str(job.id), "messages.import")

        health = await _get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok"}

        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline:
            metrics = (await _get(f"http://127.0.0.1:{port}/metrics")).text
            done = _sample(
                metrics,
                "floodgate_jobs_completed_total",
                type="messages.import",
                outcome="succeeded",
            )
            # The gauges are samples of the stream, taken every few seconds.
            lag = _sample(metrics, "floodgate_queue_lag", queue=name)
            pending = _sample(metrics, "floodgate_queue_pending", queue=name)
            if done == 1 and lag == 0 and pending == 0:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"the job never showed in /metrics:\n{metrics[-3000:]}")
        assert _sample(metrics, "floodgate_job_duration_seconds_count", type="messages.import") == 1
        row = await store.get(job.id)
        assert row is not None
        assert row.status == "succeeded"
        assert row.result == {"imported": 1, "skipped_unknown_user": 1}
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
        await redis.aclose()
        await engine.dispose()
    output = log.read_text()
    assert code == 0, output[-3000:]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output[-3000:]
    assert any(entry.get("msg") == "worker stopped" for entry in lines), output[-3000:]
