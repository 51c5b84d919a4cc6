"""JSON log lines: one object per line, trace ids inside requests, redaction, exceptions."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from floodgate.telemetry.logs import JsonFormatter, configure_logging
from floodgate.telemetry.metrics import HttpMetrics
from tests.support.logs import json_lines, json_log_stream
from tests.unit.telemetry.conftest import build_app


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with json_log_stream() as out:
        yield out


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return json_lines(stream)


def test_one_json_object_per_line_with_extras_and_redaction(stream: io.StringIO) -> None:
    log = logging.getLogger("floodgate.test")
    log.info("multi\nline", extra={"user_id": 7, "api_key": "k", "db_password": "p"})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = _lines(stream)
    assert first["msg"] == "multi\nline"
    assert first["level"] == "info"
    assert first["user_id"] == 7
    assert first["api_key"] == first["db_password"] == "[redacted]"
    assert "trace_id" not in first
    assert second["exc_type"] == "ValueError"
    assert "Traceback" in str(second["exc"])


def test_level_from_settings_filters(stream: io.StringIO) -> None:
    configure_logging("warning", stream=stream)
    logging.getLogger("floodgate.test").info("hidden")
    logging.getLogger("floodgate.test").warning("shown")
    assert [line["msg"] for line in _lines(stream)] == ["shown"]


def test_server_access_loggers_stay_quiet(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info("GET / 200")
    logging.getLogger("uvicorn.error").info("started")
    assert [line["logger"] for line in _lines(stream)] == ["uvicorn.error"]


async def test_sampled_access_log_carries_the_trace(
    stream: io.StringIO, http_metrics: HttpMetrics, spans: InMemorySpanExporter
) -> None:
    app = build_app(http_metrics, access_log_sample_rate=1.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.post("/items?password=hunter2", content=b'{"secret": "body"}')
    (span,) = spans.get_finished_spans()
    (access,) = [line for line in _lines(stream) if line["logger"] == "floodgate.access"]
    assert access["trace_id"] == format(span.context.trace_id, "032x")
    assert access["trace_sampled"] is True
    assert access["http_route"] == "/items"
    assert access["http_status"] == 200
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "body" not in text


def test_formatter_handles_unserialisable_values() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.thing = object()
    assert json.loads(JsonFormatter().format(record))["thing"].startswith("<object")
