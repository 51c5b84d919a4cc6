"""`floodgate worker` as processes against real PostgreSQL and Redis: a worker SIGKILLed in the
middle of a 10,000-item import, another one finishes it from the last committed batch, and every
item is inserted exactly once; SIGTERM ends a worker cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.jobs import JobQueue
from floodgate.jobs.store import JobStore
from tests.support.services import PostgresServer, RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
FLOODGATE = Path(sys.executable).with_name("floodgate")
ITEMS = 10_000


def _worker(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(FLOODGATE), "worker", "--queues", queue, "--concurrency", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_a_killed_worker_s_import_finishes_elsewhere_exactly_once(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    name = f"w_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", postgres_server.dsn(), "-qc", f"CREATE DATABASE {name}"], check=True)
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    engine = create_async_engine(url)
    redis = aioredis.from_url(redis_server.url, socket_timeout=5.0)
    env = {
        **os.environ,
        "FLOODGATE_DATABASE_URL": url,
        "FLOODGATE_LIMITS_URL": redis_server.url,
        "FLOODGATE_JOBS_REDELIVERY_TIMEOUT_S": "1",
        "FLOODGATE_GRACEFUL_TIMEOUT_S": "5",
    }
    log = tmp_path / "workers.log"
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (id, name, email, created_at) VALUES "
                     "(1, 'a', 'a@w.example', now()), (2, 'b', 'b@w.example', now())")
            )  # fmt: skip
        store = JobStore(engine)
        items = [[1 + i % 2, f"item {i}"] for i in range(ITEMS)]
        job = await store.create(
            queue=name, type="messages.import", args={"items": items}, total=ITEMS
        )
        await JobQueue(redis, name).enqueue(str(job.id), "messages.import")
        first = _worker(env, name, log)
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline:
            row = await store.get(job.id)
            assert row is not None
            done = row.progress.done
            if done == 0:
                await asyncio.sleep(0.005)
                continue
            first.send_signal(signal.SIGKILL)  # mid-import: some batches committed, not all
            break
        first.wait(10)
        assert 0 < done < ITEMS, f"could not kill the worker mid-import (progress {done})"

        second = _worker(env, name, log)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = await store.get(job.id)
                assert row is not None
                if row.status in ("succeeded", "dead"):
                    break
                await asyncio.sleep(0.05)
            assert row.status == "succeeded", (row, log.read_text()[-3000:])
            assert row.attempts == 2  # the killed run and the one that finished
            assert row.result == {"imported": ITEMS, "skipped_unknown_user": 0}
            async with engine.connect() as conn:
                counts = (
                    await conn.execute(text("SELECT count(*), count(DISTINCT body) FROM messages"))
                ).one()
            assert tuple(counts) == (ITEMS, ITEMS)  # every item, once
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        await redis.aclose()
        await engine.dispose()
