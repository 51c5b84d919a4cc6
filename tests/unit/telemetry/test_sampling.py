"""The request path's sampling decision equals the SDK sampler's, for every standard sampler."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from floodgate.telemetry.tracing import DEFAULT_RATIO, SamplingPolicy

SAMPLERS = [
    ("always_on", ""),
    ("always_off", ""),
    ("traceidratio", "0.25"),
    ("parentbased_always_on", ""),
    ("parentbased_always_off", ""),
    ("parentbased_traceidratio", "0.01"),
    ("parentbased_traceidratio", "0.5"),
]


def test_default_is_parent_based_one_percent() -> None:
    policy = SamplingPolicy.from_env({})
    assert policy == SamplingPolicy(parent_based=True, ratio=DEFAULT_RATIO)
    assert DEFAULT_RATIO == 0.01


def test_explicit_ratio_sampler_without_argument_samples_everything() -> None:
    assert SamplingPolicy.from_env({"OTEL_TRACES_SAMPLER": "traceidratio"}).ratio == 1.0


@pytest.mark.parametrize(
    ("name", "arg"), [("jaeger_remote", ""), ("traceidratio", "x"), ("traceidratio", "2")]
)
def test_unsupported_configuration_fails_clearly(name: str, arg: str) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER"):
        SamplingPolicy.from_env({"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg})


@pytest.mark.parametrize(("name", "arg"), SAMPLERS)
@given(
    trace_id=st.integers(min_value=1, max_value=(1 << 128) - 1),
    parent=st.sampled_from(["none", "sampled", "unsampled"]),
)
def test_fast_decision_matches_sdk_sampler(name: str, arg: str, trace_id: int, parent: str) -> None:
    policy = SamplingPolicy.from_env({"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg})
    parent_span_context = None
    parent_context = None
    if parent != "none":
        flags = TraceFlags(TraceFlags.SAMPLED if parent == "sampled" else TraceFlags.DEFAULT)
        parent_span_context = SpanContext(trace_id, 0xABC, is_remote=True, trace_flags=flags)
        parent_context = trace.set_span_in_context(NonRecordingSpan(parent_span_context))
    sdk = policy.sdk_sampler().should_sample(parent_context, trace_id, "GET /x")
    assert policy.sampled(trace_id, parent_span_context) == (
        sdk.decision is Decision.RECORD_AND_SAMPLE
    )
