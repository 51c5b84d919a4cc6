"""Two uvicorn server processes sharing a Redis: invalidation, stampede, a lock holder that dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.support.services import RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def serve(env: dict[str, str]) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integration.cache.served_app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    server = Server(proc, port)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        server.stop()
        raise
    return server


def pair(redis_server: RedisServer, **extra: str) -> tuple[dict[str, str], list[Server]]:
    env = {
        "FG_CACHE_URL": redis_server.url,
        "FG_BUS_URL": redis_server.url,
        "FG_DB_URL": f"redis://127.0.0.1:{redis_server.port}/3",
        "FG_PREFIX": f"s{uuid.uuid4().hex[:8]}",
        **extra,
    }
    servers: list[Server] = []
    try:
        servers.extend(serve(env) for _ in range(2))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return env, servers


@pytest.fixture(scope="module")
def two_servers(redis_server: RedisServer) -> Iterator[tuple[dict[str, str], list[Server]]]:
    env, servers = pair(redis_server, FG_LOAD_DELAY="0.1")
    yield env, servers
    for server in servers:
        server.stop()


async def test_a_write_through_one_server_is_read_at_once_through_the_other(
    two_servers: tuple[dict[str, str], list[Server]],
) -> None:
    _, (a, b) = two_servers
    async with httpx.AsyncClient() as client:
        await client.put(f"{a.url}/items/1", params={"value": "v0"})
        for version in range(1, 21):
            for server in (a, b):  # both processes hold the current value in L1
                got = await client.get(f"{server.url}/items/1")
                assert got.json()["value"] == f"v{version - 1}"
                assert (await client.get(f"{server.url}/totals/1")).json() == {
                    "total": len(f"v{version - 1}")
                }
            writer, reader = (a, b) if version % 2 else (b, a)
            put = await client.put(f"{writer.url}/items/1", params={"value": f"v{version}"})
            assert put.status_code == 200
            # The write has returned: no process may serve the old value from here on.
            for server in (reader, writer):
                got = await client.get(f"{server.url}/items/1")
                assert got.status_code == 200
                assert got.json()["value"] == f"v{version}", (version, server.port)
                total = await client.get(f"{server.url}/totals/1")
                assert total.json() == {"total": len(f"v{version}")}


async def raw_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on its own connection (httpx's pool is quadratic: 500 connections take seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), headers, body


async def test_500_concurrent_requests_for_a_cold_key_load_it_once(
    two_servers: tuple[dict[str, str], list[Server]],
) -> None:
    env, (a, b) = two_servers
    async with httpx.AsyncClient() as client:
        await client.put(f"{a.url}/items/500", params={"value": "cold"})
    responses = await asyncio.gather(
        *(raw_get((a, b)[i % 2].port, "/items/500") for i in range(500))
    )
    assert {status for status, _, _ in responses} == {200}
    assert {body for _, _, body in responses} == {b'{"id":500,"value":"cold"}'}
    assert len({headers["etag"] for _, headers, _ in responses}) == 1
    db = aioredis.Redis.from_url(env["FG_DB_URL"])
    try:
        loads = int(await db.get(f"{env['FG_PREFIX']}:loads:500") or 0)
    finally:
        await db.aclose()
    assert loads == 1


async def test_the_etag_is_the_same_on_both_servers_and_304_works_across_them(
    two_servers: tuple[dict[str, str], list[Server]],
) -> None:
    _, (a, b) = two_servers
    async with httpx.AsyncClient() as client:
        await client.put(f"{a.url}/items/2", params={"value": "x"})
        first = await client.get(f"{a.url}/items/2")
        etag = first.headers["etag"]
        not_modified = await client.get(f"{b.url}/items/2", headers={"if-none-match": etag})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag


async def test_when_the_lock_holder_dies_the_other_server_loads_itself(
    redis_server: RedisServer,
) -> None:
    env, (a, b) = pair(redis_server, FG_LOAD_DELAY="1", FG_LOCK_TTL="0.5")
    db = aioredis.Redis.from_url(env["FG_DB_URL"])
    shared = aioredis.Redis.from_url(env["FG_BUS_URL"])
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await client.put(f"{a.url}/items/9", params={"value": "v"})
            doomed = asyncio.create_task(client.get(f"{a.url}/items/9"))
            deadline = time.monotonic() + 10
            while not await db.get(f"{env['FG_PREFIX']}:loads:9"):  # a is loading, lock held
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert await shared.keys(f"{env['FG_PREFIX']}:l:*")
            a.stop(signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                await doomed
            started = time.monotonic()
            survivor = await client.get(f"{b.url}/items/9")
            assert survivor.status_code == 200
            assert survivor.json() == {"id": 9, "value": "v"}
            assert time.monotonic() - started < 1 + 0.5 + 2
            assert int(await db.get(f"{env['FG_PREFIX']}:loads:9") or 0) == 2
    finally:
        await db.aclose()
        await shared.aclose()
        a.stop()
        b.stop()
