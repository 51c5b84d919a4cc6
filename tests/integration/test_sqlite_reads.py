"""`SQLiteThreadReader.fetch_rows` on a SQLite file with a read pool: the same rows as SQLAlchemy
Core (type processing included), every committed write visible, never a write, and a clean
shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from floodgate.app import create_app
from floodgate.db.columns import UTCDateTime
from floodgate.db.engine import autocommit_view, create_engine
from floodgate.db.migrate import upgrade
from floodgate.db.reads import Reader, SQLiteThreadReader, create_reader
from floodgate.db.sqlite_reads import SQLiteReadPool, database_file
from floodgate.domain import MIGRATIONS_DIR
from floodgate.domain.messages import service as messages_service
from floodgate.domain.users import service as users_service
from floodgate.settings import Settings

_meta = MetaData()
_ROWS = Table(
    "read_pool_rows",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("v", String),
    Column("at", UTCDateTime()),
)
_BY_ID = select(_ROWS).where(_ROWS.c.id == bindparam("id"))
_AFTER = (
    select(_ROWS)
    .where(_ROWS.c.at > bindparam("after", type_=UTCDateTime()))
    .order_by(_ROWS.c.id)
    .limit(bindparam("limit", type_=BigInteger()))
)
_T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


async def _core_rows(engine: AsyncEngine, statement: object, params: dict[str, object]) -> list:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(statement, params)).all()]  # type: ignore[call-overload]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"))
    async with engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
        await conn.execute(
            _ROWS.insert(),
            [{"id": i, "v": f"row {i}", "at": _T0.replace(second=i)} for i in range(1, 31)],
        )
    yield engine
    await engine.dispose()


@pytest.fixture
async def reader(engine: AsyncEngine) -> AsyncIterator[Reader]:
    reader = create_reader(engine, sqlite_read_threads=3)
    assert isinstance(reader, SQLiteThreadReader)
    yield reader
    await reader.close()


async def test_same_rows_as_core_with_type_processing(engine: AsyncEngine, reader: Reader) -> None:
    row = await reader.fetch_row(_BY_ID, {"id": 7})
    assert row == {"id": 7, "v": "row 7", "at": _T0.replace(second=7)}
    assert row is not None
    assert row["at"].tzinfo is UTC  # stored as naive text, read back as UTC
    assert await reader.fetch_row(_BY_ID, {"id": 99}) is None
    # A typed datetime parameter and the OFFSET the SQLite compiler adds after a LIMIT.
    params: dict[str, object] = {"after": _T0.replace(second=20), "limit": 5}
    page = await reader.fetch_rows(_AFTER, params)
    assert [r["id"] for r in page] == [21, 22, 23, 24, 25]
    await reader.close()  # the same statement through SQLAlchemy Core and aiosqlite
    assert page == await _core_rows(autocommit_view(engine), _AFTER, params)


async def test_concurrent_reads_each_get_their_row(reader: Reader) -> None:
    ids = [1 + i % 30 for i in range(300)]
    rows = await asyncio.gather(*(reader.fetch_row(_BY_ID, {"id": i}) for i in ids))
    assert [r["id"] if r else None for r in rows] == ids
    readers = [t for t in threading.enumerate() if t.name.startswith("floodgate-sqlite-read")]
    assert 1 <= len(readers) <= 3, "served by the pool's threads, no more than it has"


async def test_reads_see_every_committed_write(engine: AsyncEngine, reader: Reader) -> None:
    for i in range(100, 120):
        async with engine.begin() as conn:
            await conn.execute(_ROWS.insert(), {"id": i, "v": "new", "at": _T0})
        assert await reader.fetch_row(_BY_ID, {"id": i}) is not None
        async with engine.begin() as conn:
            await conn.execute(_ROWS.update().where(_ROWS.c.id == i).values(v="changed"))
        assert (await reader.fetch_row(_BY_ID, {"id": i}) or {})["v"] == "changed"


async def test_the_pool_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    pool = SQLiteReadPool(path, threads=1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await pool.fetch("INSERT INTO t VALUES (1)", [])
        assert await pool.fetch("SELECT count(*) FROM t", []) == [(0,)]
    finally:
        pool.close()
    with pytest.raises(RuntimeError):  # closed: no thread left to run it
        await pool.fetch("SELECT 1", [])


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    pool = SQLiteReadPool(tmp_path / "absent.db", threads=1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            await pool.fetch("SELECT 1", [])
    finally:
        pool.close()
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize(
    ("url", "shared"),
    [
        ("sqlite+aiosqlite:///./floodgate.db", True),
        ("sqlite+aiosqlite:////var/lib/app.db", True),
        ("sqlite+aiosqlite://", False),
        ("sqlite+aiosqlite:///:memory:", False),
        ("sqlite+aiosqlite:///file:app.db?mode=memory&cache=shared&uri=true", False),
    ],
)
def test_only_plain_files_get_a_read_pool(url: str, shared: bool) -> None:
    assert (database_file(make_url(url)) is not None) is shared


async def test_an_unmigrated_database_answers_503_not_500(tmp_path: Path) -> None:
    """sqlite3's own errors from the read pool map like SQLAlchemy's did: a problem, no trace."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", gc_freeze=False
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async with app.state.engine.connect():  # the engine creates the (empty) file
                pass
            response = await client.get("/api/v1/messages/1")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unavailable")


_DOMAIN_READS: list[tuple[str, Any, dict[str, object]]] = [
    ("message by id", messages_service._BY_ID, {"message_id": 7}),
    ("user by id", users_service._BY_ID, {"user_id": 2}),
    *[
        (
            f"page by_user={by_user} keyset={keyset}",
            messages_service._page_statement(by_user=by_user, keyset=keyset),
            {
                "user_id": 2,
                "offset": 3,
                "limit": 4,
                "after_ts": _T0.replace(second=5),
                "after_id": 5,
            },
        )
        for by_user in (False, True)
        for keyset in (False, True)
    ],
]


@pytest.mark.parametrize(
    ("statement", "params"), [r[1:] for r in _DOMAIN_READS], ids=[r[0] for r in _DOMAIN_READS]
)
async def test_the_domains_hot_reads_match_core(
    tmp_path: Path, statement: Any, params: dict[str, object]
) -> None:
    """Every statement the API sends through `Reader.fetch_rows`, on a migrated database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'domain.db'}"
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    engine = create_engine(Settings(database_url=url))
    async with engine.begin() as conn:
        for u in range(1, 4):
            await conn.execute(
                users_service._table.insert(),
                {"id": u, "name": f"u{u}", "email": f"u{u}@x.org", "created_at": _T0},
            )
        for m in range(1, 21):
            at = _T0.replace(second=m % 10)  # ties on created_at: the id decides the order
            await conn.execute(
                messages_service._table.insert(),
                {
                    "id": m,
                    "user_id": 1 + m % 3,
                    "body": f"m{m}",
                    "created_at": at,
                    "updated_at": at,
                },
            )
    reader = create_reader(engine, sqlite_read_threads=2)
    try:
        assert isinstance(reader, SQLiteThreadReader)
        fast = await reader.fetch_rows(statement, params)
        await reader.close()
        assert fast, "the fixture must return rows for the comparison to mean anything"
        assert fast == await _core_rows(autocommit_view(engine), statement, params)
    finally:
        await reader.close()
        await engine.dispose()
