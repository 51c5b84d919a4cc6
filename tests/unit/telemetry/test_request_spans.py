"""The SERVER span of the telemetry middleware: attributes, naming, propagation, sampling."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from floodgate.telemetry import tracing
from floodgate.telemetry.metrics import HttpMetrics
from floodgate.telemetry.middleware import TelemetryMiddleware
from floodgate.telemetry.tracing import child_span, set_span_attributes
from tests.unit.telemetry.conftest import build_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_server_span_has_the_usual_http_attributes(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/items/5?token=secret", headers={"user-agent": "probe/1"})
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/items/{item_id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/items/5"
    assert attributes["url.scheme"] == "http"
    assert attributes["user_agent.original"] == "probe/1"
    assert "url.query" not in attributes  # may carry secrets
    assert span.status.status_code is StatusCode.UNSET


async def test_w3c_parent_is_continued(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/items/1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    (span,) = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID


async def test_unsampled_parent_creates_no_span(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/items/1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    assert spans.get_finished_spans() == ()


async def test_errors_mark_the_span(client: httpx.AsyncClient, spans: InMemorySpanExporter) -> None:
    await client.get("/boom")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]


async def test_unmatched_and_excluded_paths(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/healthz")
    await client.get("/does/not/exist")
    (span,) = spans.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})


async def test_helpers_annotate_only_recording_spans(
    http_metrics: HttpMetrics, spans: InMemorySpanExporter
) -> None:
    app = build_app(http_metrics)
    yielded: list[object] = []

    @app.get("/decide")
    async def decide() -> dict[str, bool]:
        set_span_attributes({"floodgate.ratelimit.decision": "allow"})
        with child_span("cache.fill", attributes={"floodgate.cache.tier": "l2"}) as span:
            yielded.append(span)
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.get("/decide")
        await c.get("/decide", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    fill, server = spans.get_finished_spans()  # the unsampled request left nothing
    assert yielded[1] is None
    assert fill.name == "cache.fill"
    assert fill.parent is not None
    assert fill.parent.span_id == server.context.span_id
    assert (server.attributes or {})["floodgate.ratelimit.decision"] == "allow"


async def test_without_tracing_requests_still_work(
    http_metrics: HttpMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "ACTIVE", None)
    transport = httpx.ASGITransport(app=build_app(http_metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/items/2")).status_code == 200


def test_middleware_is_pure_asgi() -> None:
    # No BaseHTTPMiddleware: it would buffer streaming bodies and cost a task per request.
    assert TelemetryMiddleware.__mro__[1] is object
