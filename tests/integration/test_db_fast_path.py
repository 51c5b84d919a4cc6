"""`AsyncpgReader.fetch_rows` on a real PostgreSQL: the raw-driver fast path returns what Core
returns, and a connection the server dropped is replaced instead of failing every later read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from floodgate.db.reads import AsyncpgReader, Reader, create_reader
from tests.support.services import PostgresServer

pytestmark = pytest.mark.postgres

_meta = MetaData()
_ROWS = Table("fast_path_rows", _meta, Column("id", Integer, primary_key=True), Column("v", String))
_BY_ID = select(_ROWS).where(_ROWS.c.id == bindparam("id"))
_FROM = select(_ROWS).where(_ROWS.c.id >= bindparam("low")).order_by(_ROWS.c.id)
_NOPE = Table("no_such_table", _meta, Column("id", Integer, primary_key=True))
_MISSING = select(_NOPE).where(_NOPE.c.id == bindparam("id"))
_SLEEP = select(func.pg_sleep(bindparam("seconds", type_=Float())))
APP_NAME = "floodgate-fast-path-test"


@pytest.fixture
async def engine(postgres_server: PostgresServer) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        postgres_server.url,
        pool_size=2,
        max_overflow=0,
        connect_args={
            "server_settings": {"application_name": APP_NAME, "statement_timeout": "200"}
        },
    )
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS fast_path_rows"))
        await conn.execute(text("CREATE TABLE fast_path_rows (id int PRIMARY KEY, v text)"))
        await conn.execute(text("INSERT INTO fast_path_rows VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
    yield engine
    await engine.dispose()  # whatever a test left in the pool
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE fast_path_rows"))
    await engine.dispose()


async def test_rows_match_a_core_execute(engine: AsyncEngine) -> None:
    reader = _reader(engine)
    assert await reader.fetch_row(_BY_ID, {"id": 2}) == {"id": 2, "v": "b"}
    assert await reader.fetch_row(_BY_ID, {"id": 9}) is None
    async with engine.connect() as conn:
        core = [dict(r._mapping) for r in (await conn.execute(_FROM, {"low": 2})).all()]
    assert (
        await reader.fetch_rows(_FROM, {"low": 2})
        == core
        == [
            {"id": 2, "v": "b"},
            {"id": 3, "v": "c"},
        ]
    )


async def test_connections_the_server_dropped_are_replaced(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    reader = _reader(engine)
    # Open both pooled connections, then have the server terminate them (a restart, a failover).
    await asyncio.gather(*(reader.fetch_row(_BY_ID, {"id": 1}) for _ in range(4)))
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
            assert await reader.fetch_row(_BY_ID, {"id": 1}) == {"id": 1, "v": "a"}
        except Exception:  # whatever asyncpg makes of it: admin shutdown, closed, mid-protocol
            failures += 1
    assert failures <= 2
    for _ in range(5):
        assert await reader.fetch_row(_BY_ID, {"id": 3}) == {"id": 3, "v": "c"}


async def test_sql_errors_keep_their_connections(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    """A bad statement or a statement timeout is the query's failure, not the connection's."""
    reader = _reader(engine)

    async def sessions() -> set[int]:
        await asyncio.gather(*(reader.fetch_row(_BY_ID, {"id": 1}) for _ in range(4)))
        return await _backend_pids(postgres_server)

    before = await sessions()
    assert len(before) == 2
    with pytest.raises(asyncpg.UndefinedTableError):
        await reader.fetch_row(_MISSING, {"id": 1})
    with pytest.raises(asyncpg.QueryCanceledError):
        await reader.fetch_row(_SLEEP, {"seconds": 5.0})  # over the 200 ms statement_timeout
    assert await sessions() == before  # no connection was replaced


def _reader(engine: AsyncEngine) -> Reader:
    reader = create_reader(engine, sqlite_read_threads=0)
    assert isinstance(reader, AsyncpgReader)
    return reader


async def _backend_pids(server: PostgresServer) -> set[int]:
    admin = await asyncpg.connect(server.dsn())
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", APP_NAME
        )
    finally:
        await admin.close()
    return {r["pid"] for r in rows}
