"""OpenTelemetry tracing configured from the standard `OTEL_*` variables, one provider per process.

The provider is started after gunicorn forks (`post_fork`) or in the single process's lifespan,
never before a fork: exporter threads and locks do not survive one. Sampling is decided *before* any
span object exists, so the 99 % of requests that are not sampled cost a random number and a context
switch.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from floodgate import __version__

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME: Final = "floodgate"
# Used when OTEL_TRACES_SAMPLER is unset: a production service samples a little, not everything.
DEFAULT_SAMPLER: Final = "parentbased_traceidratio"
DEFAULT_RATIO: Final = 0.01
_TRACE_ID_LOW_BITS: Final = (1 << 64) - 1
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
# Shared by the contrib instrumentations: they skip all work while it is set (unsampled requests).
_SUPPRESS_KEY: Final = otel_context._SUPPRESS_INSTRUMENTATION_KEY

# Downward-API variables the chart sets; OTEL_RESOURCE_ATTRIBUTES wins when it names the same key.
_KUBERNETES_ENV: Final = {
    "POD_NAME": "k8s.pod.name",
    "POD_NAMESPACE": "k8s.namespace.name",
    "NODE_NAME": "k8s.node.name",
    "POD_UID": "k8s.pod.uid",
    "CONTAINER_NAME": "k8s.container.name",
}


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """The standard samplers as data, so the request path can decide without building spans.

    Root decisions use the TraceIdRatioBased rule (the low 64 bits of the trace id below a bound),
    so they agree with any other service sampling the same trace at the same ratio.
    """

    parent_based: bool
    ratio: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SamplingPolicy:
        env = os.environ if env is None else env
        name = (env.get("OTEL_TRACES_SAMPLER") or "").strip().lower()
        arg = (env.get("OTEL_TRACES_SAMPLER_ARG") or "").strip()
        if not name:
            name, default_ratio = DEFAULT_SAMPLER, DEFAULT_RATIO
        else:
            default_ratio = 1.0  # the specification's default for an explicit *traceidratio
        parent_based = name.startswith("parentbased_")
        base = name.removeprefix("parentbased_")
        if base == "always_on":
            ratio = 1.0
        elif base == "always_off":
            ratio = 0.0
        elif base == "traceidratio":
            try:
                ratio = float(arg) if arg else default_ratio
            except ValueError:
                raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be a number, got {arg!r}") from None
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be within [0, 1], got {ratio}")
        else:
            raise ValueError(
                f"unsupported OTEL_TRACES_SAMPLER {name!r}: use always_on, always_off, "
                "traceidratio or their parentbased_ forms"
            )
        return cls(parent_based=parent_based, ratio=ratio)

    @property
    def bound(self) -> int:
        return TraceIdRatioBased.get_bound_for_rate(self.ratio)

    def sampled(self, trace_id: int, parent: SpanContext | None) -> bool:
        """The decision `sdk_sampler()` makes for this trace id and parent."""
        if parent is not None and self.parent_based:
            return parent.trace_flags.sampled
        return (trace_id & _TRACE_ID_LOW_BITS) < self.bound

    def sdk_sampler(self) -> Sampler:
        if self.ratio >= 1.0:
            root: Sampler = ALWAYS_ON
        elif self.ratio <= 0.0:
            root = ALWAYS_OFF
        else:
            root = TraceIdRatioBased(self.ratio)
        return ParentBased(root) if self.parent_based else root


class _PresetIdGenerator(RandomIdGenerator):
    """Hands the SDK the trace id the request path drew (and sampled on), once, per thread."""

    def __init__(self) -> None:
        self._preset = threading.local()

    def preset_trace_id(self, trace_id: int) -> None:
        self._preset.trace_id = trace_id

    def generate_trace_id(self) -> int:
        preset: int = getattr(self._preset, "trace_id", 0)
        if preset:
            self._preset.trace_id = 0
            return preset
        return super().generate_trace_id()


@dataclass(slots=True)
class Tracing:
    """The process's tracing state: provider, the request tracer and the sampling policy."""

    provider: TracerProvider
    tracer: trace.Tracer
    policy: SamplingPolicy
    ids: _PresetIdGenerator
    pid: int
    exporters: tuple[str, ...] = ()

    def start_server_span(
        self,
        name: str,
        parent_context: Context | None,
        trace_id: int,
        attributes: Mapping[str, AttributeValue],
    ) -> trace.Span:
        if parent_context is None:
            # A root: make the SDK use the id the sampling decision was taken on.
            self.ids.preset_trace_id(trace_id)
            parent_context = _ROOT_CONTEXT
        return self.tracer.start_span(
            name, context=parent_context, kind=SpanKind.SERVER, attributes=attributes
        )


_ROOT_CONTEXT: Final = Context()
ACTIVE: Tracing | None = None
_lock = threading.Lock()


def unsampled_context(
    trace_id: int, parent: SpanContext | None, parent_context: Context | None
) -> Context:
    """A context for a request that is not traced: ids for log correlation, instrumentation off.

    Children see a valid, unsampled parent (so parent-based samplers drop them and nothing becomes
    an orphan root), and instrumentations that honour the suppression key skip their work entirely.
    """
    span_context = SpanContext(
        trace_id,
        random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=_NOT_SAMPLED,
        trace_state=parent.trace_state if parent is not None else None,
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context), parent_context)
    return otel_context.set_value(_SUPPRESS_KEY, True, ctx)


def build_resource(env: Mapping[str, str] | None = None) -> Resource:
    """service.name/version and k8s attributes; OTEL_SERVICE_NAME/OTEL_RESOURCE_ATTRIBUTES win."""
    env = os.environ if env is None else env
    from_env = OTELResourceDetector().detect().attributes
    defaults: dict[str, AttributeValue] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": __version__,
        "process.pid": os.getpid(),
    }
    for variable, key in _KUBERNETES_ENV.items():
        if env.get(variable):
            defaults[key] = env[variable]
    if env.get("POD_NAME") and "service.instance.id" not in from_env:
        # One instance per process: gunicorn workers of one pod are separate exporters.
        defaults["service.instance.id"] = f"{env['POD_NAME']}/{os.getpid()}"
    has_service_name = bool(env.get("OTEL_SERVICE_NAME")) or "service.name" in from_env
    missing = {
        k: v
        for k, v in defaults.items()
        if k not in from_env and not (k == "service.name" and has_service_name)
    }
    return Resource.create(missing)


def build_exporters(env: Mapping[str, str] | None = None) -> list[SpanExporter]:
    """Exporters named by OTEL_TRACES_EXPORTER (otlp, console, none).

    Unset means OTLP over http/protobuf *when an endpoint is configured*; with no endpoint either,
    nothing is exported (trace ids still reach the logs) instead of retrying localhost:4318 forever.
    """
    env = os.environ if env is None else env
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        configured = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp"] if configured else []
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol != "http/protobuf":
                raise ValueError(
                    f"OTLP protocol {protocol!r} is not installed; use http/protobuf "
                    "(the collector's port 4318)"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(
                f"unsupported OTEL_TRACES_EXPORTER {name!r}: use otlp, console or none"
            )
    return exporters


def create_tracing(
    env: Mapping[str, str] | None = None, processors: Sequence[SpanProcessor] | None = None
) -> Tracing:
    """A provider, tracer and policy from the environment; `processors` replace the exporters."""
    env = os.environ if env is None else env
    policy = SamplingPolicy.from_env(env)
    ids = _PresetIdGenerator()
    provider = TracerProvider(
        sampler=policy.sdk_sampler(),
        resource=build_resource(env),
        id_generator=ids,
        shutdown_on_exit=False,
    )
    exporters = build_exporters(env) if processors is None else []
    for processor in processors or [BatchSpanProcessor(exporter) for exporter in exporters]:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("floodgate", __version__)
    names = tuple(type(exporter).__name__ for exporter in exporters)
    return Tracing(provider, tracer, policy, ids, os.getpid(), names)


def start_tracing(env: Mapping[str, str] | None = None) -> Tracing | None:
    """Start this process's provider (idempotent per pid). None when OTEL_SDK_DISABLED=true."""
    global ACTIVE
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    with _lock:
        if ACTIVE is not None and ACTIVE.pid == os.getpid():
            return ACTIVE
        ACTIVE = create_tracing(env)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            # The global provider can be set once per process; later starts (tests) keep their own.
            trace.set_tracer_provider(ACTIVE.provider)
        log.info(
            "tracing started",
            extra={
                "parent_based": ACTIVE.policy.parent_based,
                "ratio": ACTIVE.policy.ratio,
                "exporters": list(ACTIVE.exporters),
            },
        )
        return ACTIVE


def shutdown_tracing() -> None:
    """Flush and stop this process's provider (blocking: run it off the event loop)."""
    global ACTIVE
    with _lock:
        active, ACTIVE = ACTIVE, None
    if active is not None and active.pid == os.getpid():
        active.provider.shutdown()


def span_is_recording() -> bool:
    """True inside a sampled request: build expensive attributes only then."""
    return trace.get_current_span().is_recording()


def set_span_attributes(attributes: Mapping[str, AttributeValue]) -> None:
    """Annotate the current span (e.g. a cache or rate-limit decision); a no-op when unsampled.

    Callers on hot paths should check `span_is_recording()` before building the mapping.
    """
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


@contextmanager
def child_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[trace.Span | None]:
    """A child of the current span when it is recording; otherwise nothing is created (yields None).

    Never starts a trace by itself: work outside a sampled request stays untraced.
    """
    active = ACTIVE
    parent = trace.get_current_span()
    if active is None or not parent.is_recording():
        yield None
        return
    span = active.tracer.start_span(name, kind=kind, attributes=attributes)
    with trace.use_span(span, end_on_exit=True):
        yield span


def current_trace_ids() -> tuple[str, str, bool] | None:
    """(trace_id, span_id, sampled) of the current span as hex, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return (
        format(span_context.trace_id, "032x"),
        format(span_context.span_id, "016x"),
        span_context.trace_flags.sampled,
    )
