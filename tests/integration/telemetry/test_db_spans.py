"""Query spans on a real PostgreSQL: the hot reads that bypass SQLAlchemy's execution layer
(`AsyncpgReader.fetch_row` on the raw asyncpg connection) are traced like every other query."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from floodgate.db.reads import Reader, create_reader
from floodgate.telemetry import tracing
from floodgate.telemetry.instrumentation import instrument_engine
from tests.support.services import PostgresServer

pytestmark = pytest.mark.postgres

_meta = MetaData()
_PROBE = Table("span_probe", _meta, Column("id", Integer, primary_key=True))
_MISSING = Table("no_such_table", _meta, Column("id", Integer, primary_key=True))


@pytest.fixture
async def reader(postgres_server: PostgresServer) -> AsyncIterator[Reader]:
    engine = create_async_engine(postgres_server.url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS span_probe"))
        await conn.execute(text("CREATE TABLE span_probe (id int PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO span_probe VALUES (7)"))
    instrument_engine(engine)
    yield create_reader(engine, sqlite_read_threads=0)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE span_probe"))
    await engine.dispose()


async def test_fetch_row_on_the_raw_driver_is_a_child_query_span(
    reader: Reader, spans: InMemorySpanExporter
) -> None:
    by_id = select(_PROBE).where(_PROBE.c.id == bindparam("id"))
    assert await reader.fetch_row(by_id, {"id": 7}) == {"id": 7}  # no request span: not traced
    assert spans.get_finished_spans() == ()
    active = tracing.ACTIVE
    assert active is not None
    with active.tracer.start_as_current_span("request", kind=trace.SpanKind.SERVER) as parent:
        assert await reader.fetch_row(by_id, {"id": 7}) == {"id": 7}
        with pytest.raises(Exception, match="no_such_table"):
            await reader.fetch_row(
                select(_MISSING).where(_MISSING.c.id == bindparam("id")), {"id": 1}
            )
    ok, failed = [s for s in spans.get_finished_spans() if s.name != "request"]
    for span in (ok, failed):
        assert span.kind == trace.SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert (span.attributes or {})["db.system.name"] == "postgresql"
    assert ok.name == "SELECT span_probe"
    assert (ok.attributes or {})["db.query.text"].endswith("span_probe.id = $1::INTEGER")
    assert ok.status.status_code == StatusCode.UNSET
    assert failed.name == "SELECT no_such_table"
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "UndefinedTableError"
