"""`floodgate migrate` and `floodgate serve` as real processes: uvicorn, gunicorn, SIGTERM."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.server import FLOODGATE, start_server
from tests.support.services import PostgresServer


def _migrate(env: dict[str, str], cwd: Path) -> None:
    subprocess.run([str(FLOODGATE), "migrate"], env=env, cwd=cwd, check=True, timeout=60)


def test_embedded_defaults_serve_the_api(tmp_path: Path) -> None:
    # No FLOODGATE_* at all: the README's `make run` path (SQLite file in the working directory).
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    _migrate(env, tmp_path)
    assert (tmp_path / "floodgate.db").exists()
    server = start_server({}, tmp_path)
    try:
        user = httpx.post(f"{server.url}/api/v1/users", json={"name": "A", "email": "a@b.co"})
        assert user.status_code == 201
        got = httpx.get(f"{server.url}/api/v1/users/{user.json()['id']}")
        assert got.json() == user.json()
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert "server" not in {k.lower() for k in got.headers}
    finally:
        # uvicorn re-raises the caught SIGTERM after its graceful shutdown: -15 is its clean exit.
        assert server.terminate() in (0, -15)
        assert "Finished server process" in server.output()


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn-2-workers"])
def test_sigterm_lets_in_flight_requests_finish(
    postgres_server: PostgresServer, tmp_path: Path, workers: int
) -> None:
    import os

    subprocess.run(
        ["psql", postgres_server.dsn(), "-qc", "DROP DATABASE IF EXISTS serve"], check=True
    )
    subprocess.run(["psql", postgres_server.dsn(), "-qc", "CREATE DATABASE serve"], check=True)
    url = postgres_server.url.rsplit("/", 1)[0] + "/serve"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env["FLOODGATE_DATABASE_URL"] = url
    _migrate(env, tmp_path)
    server = start_server({"FLOODGATE_DATABASE_URL": url}, tmp_path, workers=workers)
    try:
        user = httpx.post(f"{server.url}/api/v1/users", json={"name": "A", "email": "a@b.co"})
        message = httpx.post(
            f"{server.url}/api/v1/messages", json={"user_id": user.json()["id"], "body": "x"}
        ).json()

        async def scenario() -> httpx.Response:
            locker = await asyncpg.connect(postgres_server.dsn("serve"))
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            async with httpx.AsyncClient(timeout=60) as client:
                pending = asyncio.create_task(
                    client.get(f"{server.url}/api/v1/messages/{message['id']}")
                )
                # Observable state, not a sleep: the request waits on the lock inside the server.
                # Watched from outside the locking transaction: inside it, PostgreSQL would keep
                # serving the pg_stat_activity snapshot taken at its first read.
                watcher = await asyncpg.connect(postgres_server.dsn("serve"))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name = 'floodgate'"
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError(f"request never reached the database: {pending!r}")
                await watcher.close()
                server.proc.send_signal(15)
                await asyncio.sleep(0.5)
                assert server.proc.poll() is None, "server exited with a request in flight"
                await tx.commit()
                await locker.close()
                return await pending

        response = asyncio.run(scenario())
        assert response.status_code == 200
        assert response.json()["id"] == message["id"]
        assert server.proc.wait(timeout=30) in (0, -15)
    finally:
        server.terminate()
