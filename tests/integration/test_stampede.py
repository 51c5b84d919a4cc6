"""500 concurrent requests for one cold message across two server processes → one database query.

Real everything: PostgreSQL (statements counted by pg_stat_statements), a Redis sidecar per
process for L2, a shared Redis for the fill lock and invalidations, uvicorn processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.server import FLOODGATE, ServerProcess, start_server
from tests.support.services import PostgresServer, RedisServer, start_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BY_ID = (
    "SELECT messages.body, messages.id, messages.user_id, messages.created_at, messages.updated_at"
)


@pytest.fixture
def redis_trio() -> Iterator[list[RedisServer]]:
    servers = [start_redis() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


async def _reads_by_id(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE $1",
            BY_ID + "%WHERE messages.id = $1%",
        )
    finally:
        await conn.close()
    return int(total)


def test_stampede_on_a_cold_key_costs_one_query(
    postgres_server: PostgresServer, redis_trio: list[RedisServer], tmp_path: Path
) -> None:
    dsn = postgres_server.dsn()
    subprocess.run(["psql", dsn, "-qc", "DROP DATABASE IF EXISTS stampede"], check=True)
    subprocess.run(["psql", dsn, "-qc", "CREATE DATABASE stampede"], check=True)
    db_dsn = postgres_server.dsn("stampede")
    subprocess.run(
        ["psql", db_dsn, "-qc", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"], check=True
    )
    url = postgres_server.url.rsplit("/", 1)[0] + "/stampede"
    shared, sidecars = redis_trio[0], redis_trio[1:]
    env = {"FLOODGATE_DATABASE_URL": url, "FLOODGATE_LIMITS_URL": shared.url}
    subprocess.run([str(FLOODGATE), "migrate"], env={**os.environ, **env}, check=True, timeout=60)
    servers: list[ServerProcess] = [
        start_server({**env, "FLOODGATE_CACHE_URL": sidecar.url, "POD_NAME": f"pod-{i}"}, tmp_path)
        for i, sidecar in enumerate(sidecars)
    ]
    try:
        user = httpx.post(f"{servers[0].url}/api/v1/users", json={"name": "s", "email": "s@x.io"})
        ids = [
            httpx.post(
                f"{servers[0].url}/api/v1/messages", json={"user_id": user.json()["id"], "body": b}
            ).json()["id"]
            for b in ("warm", "cold")
        ]
        # Warm both processes' pools and code paths on another message first.
        for server in servers:
            assert httpx.get(f"{server.url}/api/v1/messages/{ids[0]}").status_code == 200

        async def stampede() -> tuple[list[int], int, int]:
            before = await _reads_by_id(db_dsn)
            limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                responses = await asyncio.gather(
                    *(
                        client.get(f"{servers[i % 2].url}/api/v1/messages/{ids[1]}")
                        for i in range(500)
                    )
                )
            after = await _reads_by_id(db_dsn)
            return [r.status_code for r in responses], before, after

        codes, before, after = asyncio.run(stampede())
        assert codes == [200] * 500
        assert after - before == 1, f"{after - before} queries for one cold key"
    finally:
        for server in servers:
            server.terminate()
