"""Resource attributes and exporters from the standard OTEL_* variables and the downward API."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from floodgate import __version__
from floodgate.telemetry.tracing import build_exporters, build_resource


def test_resource_defaults_and_kubernetes_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    env = {"POD_NAME": "floodgate-7d9-abc", "POD_NAMESPACE": "shop", "NODE_NAME": "n1"}
    attributes = build_resource(env).attributes
    assert attributes["service.name"] == "floodgate"
    assert attributes["service.version"] == __version__
    assert attributes["k8s.pod.name"] == "floodgate-7d9-abc"
    assert attributes["k8s.namespace.name"] == "shop"
    assert attributes["k8s.node.name"] == "n1"
    assert str(attributes["service.instance.id"]).startswith("floodgate-7d9-abc/")


def test_standard_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "api")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.namespace.name=from-otel,team=core")
    attributes = build_resource({"POD_NAMESPACE": "from-downward-api"}).attributes
    assert attributes["service.name"] == "api"
    assert attributes["k8s.namespace.name"] == "from-otel"
    assert attributes["team"] == "core"


def test_no_endpoint_means_no_exporter() -> None:
    assert build_exporters({}) == []


def test_endpoint_selects_otlp_http() -> None:
    exporters = build_exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert [type(e) for e in exporters] == [OTLPSpanExporter]


def test_grpc_and_unknown_exporters_are_refused() -> None:
    with pytest.raises(ValueError, match="http/protobuf"):
        build_exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ValueError, match="zipkin"):
        build_exporters({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert build_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
