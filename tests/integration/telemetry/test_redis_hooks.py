"""`instrument_redis` against a real Redis: latency histogram for every call, child spans only
inside a recording span, errors counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from redis.exceptions import ResponseError

from floodgate.telemetry import tracing
from floodgate.telemetry.instrumentation import instrument_redis
from tests.support.services import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = instrument_redis(aioredis.Redis.from_url(redis_server.url), role="hooktest")
    yield c
    await c.aclose()


def _count(command: str) -> float:
    value = REGISTRY.get_sample_value(
        "floodgate_redis_command_duration_seconds_count",
        {"role": "hooktest", "command": command},
    )
    return value or 0.0


async def test_commands_pipelines_and_scripts(
    client: aioredis.Redis, spans: InMemorySpanExporter, redis_server: RedisServer
) -> None:
    before = {c: _count(c) for c in ("SET", "GET", "PIPELINE", "EVALSHA")}
    await client.set("k", "v")  # outside any request span: timed, not traced
    assert spans.get_finished_spans() == ()
    active = tracing.ACTIVE
    assert active is not None
    with active.tracer.start_as_current_span("request", kind=trace.SpanKind.SERVER) as parent:
        assert await client.get("k") == b"v"
        async with client.pipeline() as pipe:
            pipe.incr("n")
            pipe.incr("n")
            await pipe.execute()
        script = client.register_script("return redis.call('GET', KEYS[1])")
        assert await script(keys=["k"]) == b"v"
    names = [s.name for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert names[:2] == ["GET", "PIPELINE"]
    assert "EVALSHA" in names
    for span in spans.get_finished_spans():
        if span.kind is trace.SpanKind.CLIENT:
            assert span.parent is not None
            assert span.parent.span_id == parent.get_span_context().span_id
            attributes = dict(span.attributes or {})
            assert attributes["db.system.name"] == "redis"
            assert attributes["server.port"] == redis_server.port
            assert attributes["floodgate.redis.role"] == "hooktest"
    pipeline_span = next(s for s in spans.get_finished_spans() if s.name == "PIPELINE")
    assert (pipeline_span.attributes or {})["db.operation.batch.size"] == 2
    assert _count("SET") == before["SET"] + 1
    assert _count("GET") == before["GET"] + 1
    assert _count("PIPELINE") == before["PIPELINE"] + 1
    assert _count("EVALSHA") >= before["EVALSHA"] + 1


async def test_errors_are_counted(client: aioredis.Redis) -> None:
    errors = "floodgate_redis_command_errors_total"
    before = REGISTRY.get_sample_value(errors, {"role": "hooktest"}) or 0.0
    await client.set("s", "text")
    with pytest.raises(ResponseError):
        await client.incr("s")
    assert REGISTRY.get_sample_value(errors, {"role": "hooktest"}) == before + 1
