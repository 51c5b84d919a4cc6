"""Metrics, traces and logs for the service; platform code (never imports `floodgate.domain`).

Names are re-exported lazily so that importing the package (gunicorn's arbiter does, before forking)
loads neither prometheus_client nor the OpenTelemetry SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floodgate.telemetry.install import install_telemetry, start_telemetry, stop_telemetry
    from floodgate.telemetry.instrumentation import instrument_engine, instrument_redis
    from floodgate.telemetry.logs import configure_logging
    from floodgate.telemetry.metrics import RedisTimer
    from floodgate.telemetry.tracing import child_span, set_span_attributes, span_is_recording

_EXPORTS = {
    "install_telemetry": "floodgate.telemetry.install",
    "start_telemetry": "floodgate.telemetry.install",
    "stop_telemetry": "floodgate.telemetry.install",
    "instrument_engine": "floodgate.telemetry.instrumentation",
    "instrument_redis": "floodgate.telemetry.instrumentation",
    "configure_logging": "floodgate.telemetry.logs",
    "RedisTimer": "floodgate.telemetry.metrics",
    "child_span": "floodgate.telemetry.tracing",
    "set_span_attributes": "floodgate.telemetry.tracing",
    "span_is_recording": "floodgate.telemetry.tracing",
}

__all__ = [
    "RedisTimer",
    "child_span",
    "configure_logging",
    "install_telemetry",
    "instrument_engine",
    "instrument_redis",
    "set_span_attributes",
    "span_is_recording",
    "start_telemetry",
    "stop_telemetry",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
