"""The API suite runs once per backend: embedded SQLite and a real PostgreSQL server.

Each backend's schema is migrated once per session; every test starts from empty tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from floodgate.app import create_app
from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.settings import Settings


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "api.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url
    upgrade(url, MIGRATIONS_DIR)
    return url


async def _empty_tables(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE messages, users RESTART IDENTITY CASCADE"))
        else:
            await conn.execute(text("DELETE FROM messages"))
            await conn.execute(text("DELETE FROM users"))
    await engine.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    # No GC freeze here: each start would first run a full collection of the whole pytest heap
    # (+10 s over the suite); test_gc_freeze.py and the served-process tests cover the default.
    overrides.setdefault("gc_freeze", False)
    return Settings(database_url=database_url, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    await _empty_tables(database_url)
    application = create_app(make_settings(database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
