"""Exactness under contention: 4 uvicorn processes x 50 concurrent clients on one key.

Rule: 50 requests per 10 s, burst 0: T = 200 ms and a fresh key allows 50 at once. All clients fire
together; the limiter must allow exactly 50 plus one per T that passed while they were firing:
`50 <= allowed <= 50 + floor(elapsed / T)`, and the final TAT must equal first_arrival + allowed x T
with the first arrival inside the measured window (no lost or double charges).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from tests.integration.ratelimit.support import HttpConnection, Reply, uvicorn_servers
from tests.support.services import RedisServer
from tests.unit.ratelimit.builders import policy_doc, rule_doc

QUOTA = 50
INTERVAL_US = 200_000
PROCESSES = 4
CLIENTS_PER_PROCESS = 50
REQUESTS_PER_CLIENT = 2


def write_policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    rule = rule_doc(
        "hammered",
        match={"path": {"type": "PathPrefix", "value": "/limited"}},
        limit={"requests": QUOTA, "period": "10s"},
        burst=0,
    )
    path.write_text(yaml.safe_dump(policy_doc("exact", rule)))
    return path


async def hammer(ports: list[int], clients_per_port: int) -> list[Reply]:
    connections = [await HttpConnection.open(p) for p in ports for _ in range(clients_per_port)]
    for conn in connections:  # warm every connection on an unlimited route
        assert (await conn.get("/health")).status == 200
    go = asyncio.Event()
    replies: list[Reply] = []

    async def client(conn: HttpConnection) -> None:
        await go.wait()
        for _ in range(REQUESTS_PER_CLIENT):
            replies.append(await conn.get("/limited/x"))

    tasks = [asyncio.create_task(client(c)) for c in connections]
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(*tasks)
    for conn in connections:
        await conn.close()
    return replies


def check(allowed: int, elapsed_us: int) -> None:
    assert allowed >= QUOTA
    assert allowed <= QUOTA + elapsed_us // INTERVAL_US
    if elapsed_us < INTERVAL_US:
        assert allowed == QUOTA


@pytest.mark.redis
async def test_four_processes_share_one_exact_limit(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tag = f"exact-{uuid.uuid4().hex[:8]}"
    env = {
        "FG_LIMITS_URL": redis_server.url,
        "FG_POLICY_FILE": str(write_policy(tmp_path)),
        "FG_KEY_TAG": tag,
    }
    client = aioredis.from_url(redis_server.url)
    try:
        with uvicorn_servers(PROCESSES, env) as ports:
            sec, usec = await client.time()
            before = sec * 1_000_000 + usec
            replies = await hammer(ports, CLIENTS_PER_PROCESS)
            sec, usec = await client.time()
            after = sec * 1_000_000 + usec
        statuses = [r.status for r in replies]
        allowed = statuses.count(200)
        assert statuses.count(429) == len(replies) - allowed  # nothing else: no errors
        check(allowed, after - before)
        raw = await client.get(f"{{{tag}}}:rl:shop/exact:hammered:ip:127.0.0.1")
        assert raw is not None
        tat = int(raw)
        first_arrival = tat - allowed * INTERVAL_US
        assert before <= first_arrival <= after
        print(f"redis: {allowed} allowed of {len(replies)} in {(after - before) / 1000:.0f} ms")
    finally:
        await client.aclose()


async def test_one_process_with_the_memory_store_is_exact(tmp_path: Path) -> None:
    env = {"FG_LIMITS_URL": "memory://", "FG_POLICY_FILE": str(write_policy(tmp_path))}
    with uvicorn_servers(1, env) as ports:
        # The memory store runs on CLOCK_MONOTONIC, which this process shares.
        before = time.monotonic_ns() // 1000
        replies = await hammer(ports, PROCESSES * CLIENTS_PER_PROCESS)
        after = time.monotonic_ns() // 1000
    statuses = [r.status for r in replies]
    allowed = statuses.count(200)
    assert statuses.count(429) == len(replies) - allowed
    check(allowed, after - before)
    print(f"memory: {allowed} allowed of {len(replies)} in {(after - before) / 1000:.0f} ms")
