"""Migrations go up and down on both backends, and agree with the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from floodgate.db.migrate import downgrade, upgrade
from floodgate.domain import MIGRATIONS_DIR, metadata
from floodgate.domain.migrations import include_object
from tests.support.services import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    import subprocess

    name = f"mig_{abs(hash(request.node.nodeid)) % 10**8}"
    subprocess.run(["psql", server.dsn(), "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", server.dsn(), "-qc", f"CREATE DATABASE {name}"], check=True)
    return server.url.rsplit("/", 1)[0] + f"/{name}"


async def _inspect(url: str, fn):  # type: ignore[no-untyped-def]
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        result = await conn.run_sync(fn)
    await engine.dispose()
    return result


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": include_object}
    )
    return list(compare_metadata(ctx, metadata()))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _indexes(conn: Connection) -> set[str]:
    found: set[str] = set()
    for table in ("users", "messages", "jobs"):
        found |= {ix["name"] for ix in inspect(conn).get_indexes(table) if ix["name"]}
    return found


async def test_upgrade_downgrade_roundtrip_and_models_agree(fresh_url: str) -> None:
    await asyncio.to_thread(upgrade, fresh_url, MIGRATIONS_DIR)
    assert {"users", "messages", "jobs", "alembic_version"} <= await _inspect(fresh_url, _tables)
    assert await _inspect(fresh_url, _diff) == []
    indexes = await _inspect(fresh_url, _indexes)
    assert {
        "ix_users_name",
        "ix_messages_created_at_id",
        "ix_messages_user_id_created_at_id",
        "ix_jobs_status_updated_at",
    } <= indexes
    if fresh_url.startswith("postgresql"):
        assert "ix_users_name_trgm" in indexes
    await asyncio.to_thread(downgrade, fresh_url, MIGRATIONS_DIR)
    assert await _inspect(fresh_url, _tables) == {"alembic_version"}
    await asyncio.to_thread(upgrade, fresh_url, MIGRATIONS_DIR)
    assert {"users", "messages"} <= await _inspect(fresh_url, _tables)


@pytest.mark.postgres
async def test_substring_search_uses_trigram_index(postgres_server: PostgresServer) -> None:
    url = postgres_server.url
    await asyncio.to_thread(upgrade, url, MIGRATIONS_DIR)
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = (
            (
                await conn.execute(
                    text("EXPLAIN SELECT * FROM users WHERE name ILIKE '%' || :term || '%'"),
                    {"term": "john"},
                )
            )
            .scalars()
            .all()
        )
    await engine.dispose()
    assert any("ix_users_name_trgm" in line for line in plan), plan
