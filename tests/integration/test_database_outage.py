"""A PostgreSQL outage and its end, on a real server: requests that need the database get a 503
problem with Retry-After (not a 500 and a stack trace), cached reads keep being served, and the
service recovers by itself once the server is back."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from floodgate.app import create_app
from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.settings import Settings
from tests.support.builders import create_message, create_user
from tests.support.services import PostgresServer, start_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    # Its own server: this test stops it, which the session's shared one must never be.
    pg = start_postgres()
    upgrade(pg.url, MIGRATIONS_DIR)
    yield pg
    pg.stop()


@pytest.fixture
async def client(server: PostgresServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=server.url, db_pool_size=4, db_pool_timeout_s=1)  # type: ignore[arg-type]
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_an_outage_is_a_503_and_the_service_recovers(
    server: PostgresServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = await create_user(client)
    cached = await create_message(client, user["id"], "read before the outage")
    uncached = await create_message(client, user["id"], "never read")
    assert (await client.get(f"/api/v1/messages/{cached['id']}")).status_code == 200

    server.halt()
    with caplog.at_level(logging.WARNING, logger="floodgate.errors"):
        for method, path, body in (
            ("GET", f"/api/v1/messages/{uncached['id']}", None),
            ("GET", "/api/v1/messages?limit=5", None),
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/messages", {"user_id": user["id"], "body": "during"}),
            ("PATCH", f"/api/v1/users/{user['id']}", {"name": "during"}),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            assert response.json()["type"].endswith("/unavailable")
    assert "dependency unavailable" in caplog.text
    assert "Traceback" not in caplog.text  # an outage is not a bug: no stack traces
    # What the cache holds is still served while the database is away.
    kept = await client.get(f"/api/v1/messages/{cached['id']}")
    assert kept.status_code == 200
    assert kept.json() == cached
    assert (await client.get("/readyz")).status_code == 503

    server.resume()
    statuses = [
        (await client.get(f"/api/v1/messages/{uncached['id']}")).status_code for _ in range(5)
    ]
    # Pooled connections died with the server: each may fail the one read that finds it.
    assert statuses[-1] == 200, statuses
    assert statuses.count(503) <= 4
    assert (await client.get(f"/api/v1/messages/{uncached['id']}")).json() == uncached
    assert (await client.get("/readyz")).status_code == 200
    created = await client.post("/api/v1/messages", json={"user_id": user["id"], "body": "after"})
    assert created.status_code == 201


_LOAD_WORKERS = 8
_LOAD_ROUNDS = 60  # per worker: bounded whatever the timing
_EMAIL_DOMAIN = "restart.example.com"  # in every statement's parameters, never in the log


async def _restart_load(client: httpx.AsyncClient, worker: int, stop: asyncio.Event) -> list[Any]:
    """Creates (Core INSERT ... RETURNING), first reads (hot read, uncached), ORM updates and
    list pages (query + count) until `stop`; each response's (what, status, Retry-After)."""
    seen: list[Any] = []
    for i in range(_LOAD_ROUNDS):
        if stop.is_set():
            break
        email = f"w{worker}-{i}@{_EMAIL_DOMAIN}"
        created = await client.post("/api/v1/users", json={"name": f"w{worker}", "email": email})
        seen.append(("create", created.status_code, created.headers.get("retry-after")))
        pages = (
            ("list-users", "/api/v1/users?per_page=5"),
            ("list-messages", "/api/v1/messages?limit=5"),
        )
        for what, path in pages:
            page = await client.get(path)
            seen.append((what, page.status_code, page.headers.get("retry-after")))
        if created.status_code != 201:
            continue
        user_id = created.json()["id"]
        read = await client.get(f"/api/v1/users/{user_id}")
        seen.append(("read", read.status_code, read.headers.get("retry-after")))
        patched = await client.patch(f"/api/v1/users/{user_id}", json={"name": f"p{i}"})
        seen.append(("update", patched.status_code, patched.headers.get("retry-after")))
    return seen


async def test_a_restart_under_load_is_only_2xx_and_503(
    server: PostgresServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """`pg_ctl restart -m fast` under load: "terminating connection due to administrator
    command" on writes and ORM updates, "the database system is starting up" on hot reads."""
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        load = [
            asyncio.create_task(_restart_load(client, worker, stop))
            for worker in range(_LOAD_WORKERS)
        ]
        await asyncio.sleep(0.3)  # every pooled connection in use before the restart
        await asyncio.to_thread(server.restart)
        await asyncio.sleep(1.0)  # and some load after it
        stop.set()
        seen = [entry for results in await asyncio.gather(*load) for entry in results]
    statuses = Counter(status for _, status, _ in seen)
    bad = [entry for entry in seen if not (200 <= entry[1] < 300 or entry[1] == 503)]
    assert not bad, (statuses, bad[:10])
    assert all(retry == "1" for _, status, retry in seen if status == 503)
    assert statuses[201] > 0, statuses
    assert _EMAIL_DOMAIN not in caplog.text  # no statement parameters in any log line
    assert "Traceback" not in caplog.text  # connection errors are not bugs: no stack traces
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # Recovered without a restart of the service: every kind of request works again.
    user = await create_user(client)
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 200
    assert (await client.patch(f"/api/v1/users/{user['id']}", json={"name": "x"})).is_success
    assert (await client.get("/api/v1/users?per_page=5")).status_code == 200
