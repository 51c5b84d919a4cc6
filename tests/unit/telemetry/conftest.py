"""Fixtures for the telemetry unit tests: a small app, a private registry, span capture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from floodgate.telemetry import tracing
from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.install import disable_native_fastapi_telemetry
from floodgate.telemetry.metrics import HttpMetrics
from floodgate.telemetry.middleware import TelemetryMiddleware


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def http_metrics(registry: CollectorRegistry) -> HttpMetrics:
    return HttpMetrics(registry)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every request sampled (unless a parent says otherwise); finished spans kept in memory."""
    exporter = InMemorySpanExporter()
    active = tracing.create_tracing(
        {"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_SERVICE_NAME": "unit"},
        processors=[SimpleSpanProcessor(exporter)],
    )
    monkeypatch.setattr(tracing, "ACTIVE", active)
    yield exporter
    active.provider.shutdown()


def build_app(
    metrics: HttpMetrics,
    exemplars: ExemplarStore | None = None,
    access_log_sample_rate: float = 0.0,
) -> FastAPI:
    app = FastAPI()
    disable_native_fastapi_telemetry(app)  # another test may have set a global tracer provider

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(404, "no such item")
        return {"id": item_id}

    @app.post("/items")
    async def create_item() -> dict[str, str]:
        return {"created": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(
        TelemetryMiddleware,
        metrics=metrics,
        exemplars=exemplars or ExemplarStore(),
        access_log_sample_rate=access_log_sample_rate,
    )
    return app


@pytest.fixture
async def client(http_metrics: HttpMetrics) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(http_metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
