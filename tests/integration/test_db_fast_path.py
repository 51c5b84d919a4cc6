"""`fetch_rows` on a real PostgreSQL: the raw-driver fast path returns what Core returns, and a
connection the server dropped is replaced instead of failing every later read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from floodgate.db import autocommit_view, fetch_row, fetch_rows
from tests.support.services import PostgresServer

pytestmark = pytest.mark.postgres

_meta = MetaData()
_ROWS = Table("fast_path_rows", _meta, Column("id", Integer, primary_key=True), Column("v", String))
_BY_ID = select(_ROWS).where(_ROWS.c.id == bindparam("id"))
_FROM = select(_ROWS).where(_ROWS.c.id >= bindparam("low")).order_by(_ROWS.c.id)
APP_NAME = "floodgate-fast-path-test"


@pytest.fixture
async def engine(postgres_server: PostgresServer) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        postgres_server.url,
        pool_size=2,
        max_overflow=0,
        connect_args={"server_settings": {"application_name": APP_NAME}},
    )
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS fast_path_rows"))
        await conn.execute(text("CREATE TABLE fast_path_rows (id int PRIMARY KEY, v text)"))
        await conn.execute(text("INSERT INTO fast_path_rows VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
    yield engine
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE fast_path_rows"))
    await engine.dispose()


async def test_rows_match_a_core_execute(engine: AsyncEngine) -> None:
    reader = autocommit_view(engine)
    assert await fetch_row(reader, _BY_ID, {"id": 2}) == {"id": 2, "v": "b"}
    assert await fetch_row(reader, _BY_ID, {"id": 9}) is None
    async with engine.connect() as conn:
        core = [dict(r._mapping) for r in (await conn.execute(_FROM, {"low": 2})).all()]
    assert (
        await fetch_rows(reader, _FROM, {"low": 2})
        == core
        == [
            {"id": 2, "v": "b"},
            {"id": 3, "v": "c"},
        ]
    )


async def test_connections_the_server_dropped_are_replaced(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    reader = autocommit_view(engine)
    # Open both pooled connections, then have the server terminate them (a restart, a failover).
    await asyncio.gather(*(fetch_row(reader, _BY_ID, {"id": 1}) for _ in range(4)))
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            APP_NAME,
        )
    finally:
        await admin.close()
    assert killed == 2
    failures = 0
    for _ in range(4):  # each dead connection fails at most the one read that finds it
        try:
            assert await fetch_row(reader, _BY_ID, {"id": 1}) == {"id": 1, "v": "a"}
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
            failures += 1
    assert failures <= 2
    for _ in range(5):
        assert await fetch_row(reader, _BY_ID, {"id": 3}) == {"id": 3, "v": "c"}
