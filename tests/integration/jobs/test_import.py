"""`POST /api/v1/messages:import` end to end: 202 + Location, the job polled to `succeeded`, every
item inserted once. On the embedded default the API runs the job itself; with the shared Redis a
real `Worker` with the row hooks runs it (PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from floodgate.app import create_app
from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR, job_types
from floodgate.jobs import JobQueue, Worker
from floodgate.jobs.keys import queue_keys
from floodgate.jobs.rows import JobRows
from floodgate.jobs.store import JobStore
from floodgate.settings import Settings
from tests.support.services import PostgresServer, RedisServer


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def _users(client: httpx.AsyncClient, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        r = await client.post(
            "/api/v1/users", json={"email": f"{uuid.uuid4().hex[:10]}@i.example", "name": "I"}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def _until_final(client: httpx.AsyncClient, location: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get(location)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        if r.json()["status"] in ("succeeded", "dead"):
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"job at {location} not finished after {timeout} s: {r.json()}")


async def _total(client: httpx.AsyncClient, user_id: int) -> int:
    r = await client.get("/api/v1/messages", params={"user_id": user_id, "per_page": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["meta"]["total"])


def _items(users: list[int], n: int) -> list[dict[str, Any]]:
    return [{"user_id": users[i % len(users)], "body": f"imported {i}"} for i in range(n)]


async def test_import_on_the_embedded_default(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    async with serving(Settings(database_url=url, gc_freeze=False)) as client:
        users = await _users(client, 2)
        items = [*_items(users, 1_201), {"user_id": 999_999, "body": "nobody's"}]
        r = await client.post("/api/v1/messages:import", json={"items": items})
        assert r.status_code == 202, r.text
        location = r.headers["location"]
        assert location == f"/api/v1/jobs/{r.json()['id']}"
        assert r.json()["status"] == "queued"
        assert r.json()["progress"] == {"done": 0, "total": 1_202}
        job = await _until_final(client, location)
        assert job["status"] == "succeeded", job
        assert job["progress"] == {"done": 1_202, "total": 1_202}
        assert job["result"] == {"imported": 1_201, "skipped_unknown_user": 1}
        assert job["attempts"] == 1
        await asyncio.sleep(5.1)  # totals are cached for up to TOTAL_TTL_S
        assert await _total(client, users[0]) == 601
        assert await _total(client, users[1]) == 600


async def test_bad_imports_and_unknown_jobs_are_problems(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bad.db'}"
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    async with serving(Settings(database_url=url, gc_freeze=False)) as client:
        for body in (
            {"items": []},
            {"items": [{"user_id": 1, "body": "x"}] * 10_001},
            {"items": [{"user_id": 0, "body": "x"}]},
            {"items": [{"user_id": 1, "body": ""}]},
            {"items": [{"user_id": 1, "body": "x"}], "extra": 1},
        ):
            r = await client.post("/api/v1/messages:import", json=body)
            assert r.status_code == 422, (body if len(str(body)) < 200 else "big", r.text)
            assert r.headers["content-type"] == "application/problem+json"
        missing = await client.get(f"/api/v1/jobs/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert (await client.get("/api/v1/jobs/not-a-uuid")).status_code == 404  # no such path
        redrive = await client.post(f"/api/v1/jobs/{uuid.uuid4()}:redrive")
        assert redrive.status_code == 404
        # The import route allows a larger body than the rest of the API.
        big = {"items": [{"user_id": 1, "body": "y" * 1000}] * 200}  # ~220 KB > 64 KiB
        assert (await client.post("/api/v1/messages:import", json=big)).status_code == 202
        assert (await client.post("/api/v1/users", json=big)).status_code == 413


@pytest.mark.postgres
async def test_import_through_the_shared_redis_and_a_worker(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    await asyncio.to_thread(upgrade, postgres_server.url, MIGRATIONS_DIR)
    redis = aioredis.from_url(redis_server.url, socket_timeout=5.0)
    keys = queue_keys("default")
    await redis.delete(keys.stream, keys.dead, keys.delayed)  # the queue of this test alone
    settings = Settings(
        database_url=postgres_server.url, limits_url=redis_server.url, gc_freeze=False
    )
    engine = create_async_engine(postgres_server.url)
    try:
        async with serving(settings) as client:
            users = await _users(client, 3)
            r = await client.post("/api/v1/messages:import", json={"items": _items(users, 2_500)})
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            await asyncio.sleep(0.3)
            queued = (await client.get(location)).json()
            assert queued["status"] == "queued"  # nobody runs it: no worker yet
            assert await redis.xlen(keys.stream) >= 1
            rows = JobRows(JobStore(engine), {t.name: t for t in job_types()})
            worker = Worker(
                redis, rows.handlers(), hooks=rows, redelivery_timeout_s=2, poll_interval_s=0.05
            )
            task = asyncio.create_task(worker.run())
            try:
                job = await _until_final(client, location)
            finally:
                worker.stop()
                await asyncio.wait_for(task, 10)
            assert job["status"] == "succeeded", job
            assert job["result"] == {"imported": 2_500, "skipped_unknown_user": 0}
            async with engine.connect() as conn:
                bodies = (
                    await conn.execute(
                        text("SELECT count(*), count(DISTINCT body) FROM messages "
                             "WHERE user_id = ANY(:u) AND body LIKE 'imported %'"),
                        {"u": users},
                    )
                ).one()  # fmt: skip
            assert tuple(bodies) == (2_500, 2_500)  # each item once
            stats = await worker.queue.stats()
            assert (stats.lag, stats.pending) == (0, 0)
    finally:
        await redis.aclose()
        await engine.dispose()


@pytest.mark.postgres
async def test_a_job_whose_entry_was_lost_is_re_added_by_the_reconciler(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    from floodgate.jobs.submit import Submitter
    from floodgate.process.jobs_worker import reconcile_forever
    from tests.support.services import free_port

    await asyncio.to_thread(upgrade, postgres_server.url, MIGRATIONS_DIR)
    engine = create_async_engine(postgres_server.url)
    down = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1.0)
    redis = aioredis.from_url(redis_server.url, socket_timeout=5.0)
    name = f"lost-{uuid.uuid4().hex[:8]}"
    try:
        store = JobStore(engine)
        # Redis is unreachable at submit time: the job is still accepted, its row kept.
        job = await Submitter(store, {name: JobQueue(down, name)}).submit(
            "messages.import", {"items": []}, queue=name
        )
        assert (await store.get(job.id)).status == "queued"  # type: ignore[union-attr]
        queue = JobQueue(redis, name)
        reconciler = asyncio.create_task(
            reconcile_forever(Submitter(store, {name: queue}), {name: queue}, 0.1, 0.2)
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not await redis.exists(queue.keys.stream):
                await asyncio.sleep(0.05)
        finally:
            reconciler.cancel()
        entries = await redis.xrange(queue.keys.stream)
        assert {e[1][b"id"].decode() for e in entries} == {str(job.id)}  # re-added
    finally:
        await down.aclose()
        await redis.aclose()
        await engine.dispose()
