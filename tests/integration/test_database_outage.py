"""A PostgreSQL outage and its end, on a real server: requests that need the database get a 503
problem with Retry-After (not a 500 and a stack trace), cached reads keep being served, and the
service recovers by itself once the server is back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

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
