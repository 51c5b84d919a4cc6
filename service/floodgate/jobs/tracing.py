"""Trace context across the queue: PRODUCER spans at enqueue, CONSUMER spans around handlers.

The W3C `traceparent` of the producer travels in the stream entry; the worker makes it the parent
of the handler's span, so a request and the job it caused are one trace. With tracing off (no
tracer), nothing is created; the producer's context is still made current for the handler, so its
log lines carry the request's trace id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from floodgate.jobs.entry import JobContext
from floodgate.jobs.keys import QueueKeys
from floodgate.telemetry import tracing

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_ROOT: Final = Context()


def current_traceparent() -> str | None:
    """The current span's `traceparent` header value, or None outside any trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def default_tracer() -> trace.Tracer | None:
    """The process's tracer when tracing was started (`telemetry.tracing.start_tracing`)."""
    active = tracing.ACTIVE
    return None if active is None else active.tracer


def _attributes(keys: QueueKeys, operation: str) -> dict[str, AttributeValue]:
    return {
        "messaging.system": "redis",
        "messaging.destination.name": keys.stream,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }


@contextmanager
def producer_span(
    tracer: trace.Tracer | None, keys: QueueKeys, job_id: str, job_type: str
) -> Iterator[trace.Span | None]:
    """A PRODUCER child of the current span, only when that span is recording (an enqueue never
    starts a trace by itself)."""
    if tracer is None or not trace.get_current_span().is_recording():
        yield None
        return
    attributes = _attributes(keys, "send")
    attributes["floodgate.job.id"] = job_id
    attributes["floodgate.job.type"] = job_type
    with tracer.start_as_current_span(
        f"send {job_type}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def consumer_span(
    tracer: trace.Tracer | None, keys: QueueKeys, ctx: JobContext
) -> Iterator[trace.Span | None]:
    """The CONSUMER span of one delivery, child of the producer's context (a root without one).

    The worker records failures on it itself: handler exceptions never escape this block.
    """
    parent = _PROPAGATOR.extract({"traceparent": ctx.traceparent}) if ctx.traceparent else None
    if tracer is None:
        if parent is None:
            yield None
            return
        token = otel_context.attach(parent)
        try:
            yield None
        finally:
            otel_context.detach(token)
        return
    attributes: Mapping[str, AttributeValue] = {
        **_attributes(keys, "process"),
        "messaging.message.id": ctx.entry_id,
        "messaging.consumer.group.name": keys.group,
        "floodgate.job.id": ctx.job_id,
        "floodgate.job.type": ctx.type,
        "floodgate.job.attempt": ctx.attempt,
    }
    with tracer.start_as_current_span(
        f"process {ctx.type}",
        context=_ROOT if parent is None else parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span
