"""Wire telemetry into an app: logging, the request middleware, `/metrics`, tracing lifecycle."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from prometheus_client import disable_created_metrics

from floodgate.settings import Settings
from floodgate.telemetry import multiprocess
from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.exposition import build_registry, metrics_endpoint
from floodgate.telemetry.logs import configure_logging
from floodgate.telemetry.metrics import http_metrics
from floodgate.telemetry.middleware import TelemetryMiddleware
from floodgate.telemetry.tracing import shutdown_tracing, start_tracing

# FastAPI's built-in OpenTelemetry support switches itself on as soon as a global tracer provider
# exists and then traces every request (plus dependency/serialization spans) whether sampled or not.
# Our middleware records the same server span for far less; pass this as `FastAPI(telemetry=...)`.
FASTAPI_NATIVE_TELEMETRY_OFF: dict[str, Any] = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def disable_native_fastapi_telemetry(app: FastAPI) -> None:
    """FastAPI >= 0.16x starts its own spans whenever a global tracer provider exists; ours replace
    them (same attributes, a fraction of the cost), so switch FastAPI's off."""
    native: Any = getattr(app, "_telemetry", None)
    if isinstance(native, dict):  # the same dict FastAPI's NativeTelemetry reads per request
        native.update(FASTAPI_NATIVE_TELEMETRY_OFF)


def install_telemetry(app: FastAPI, settings: Settings) -> None:
    """JSON logs, the telemetry middleware (outermost: call after every other add_middleware) and
    `GET /metrics`. Nothing is started here; the lifespan calls `start_telemetry()`."""
    configure_logging(settings.log_level)
    # `*_created` series double what every scrape carries and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    disable_native_fastapi_telemetry(app)
    exemplars = ExemplarStore(multiprocess.directory())
    app.add_middleware(
        TelemetryMiddleware,
        metrics=http_metrics() if settings.metrics_enabled else None,
        exemplars=exemplars,
        access_log_sample_rate=settings.access_log_sample_rate,
    )
    if settings.metrics_enabled:
        app.add_route(
            "/metrics",
            metrics_endpoint(build_registry(exemplars)),  # type: ignore[arg-type]
            methods=["GET"],
            include_in_schema=False,
        )


async def start_telemetry() -> None:
    """Start this process's tracer provider (a no-op in gunicorn workers: post_fork did it)."""
    start_tracing()


async def stop_telemetry() -> None:
    """Flush pending spans and stop the provider, off the event loop."""
    await to_thread.run_sync(shutdown_tracing)
