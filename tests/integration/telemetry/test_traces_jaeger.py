"""Traces from `floodgate serve --workers 2` (provider started after the fork) in a real Jaeger:
the HTTP server span with its DB child spans and attributes, W3C propagation, unsampled requests
absent; Redis child spans once the cache talks to Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.telemetry.conftest import eventually, migrated_sqlite
from tests.integration.telemetry.services import Jaeger, jaeger_binary, start_jaeger
from tests.support.server import start_server
from tests.support.services import RedisServer

Span = dict[str, Any]


@pytest.fixture(scope="module")
def jaeger() -> Iterator[Jaeger]:
    binary = jaeger_binary()
    if binary is None:
        pytest.skip("jaeger not built: run scripts/tools-jaeger.sh (make tools does)")
    server = start_jaeger(binary)
    yield server
    server.stop()


def _tags(span: Span) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _is_server(span: Span) -> bool:
    return bool(_tags(span).get("span.kind") == "server")


def _complete(spans: list[Span]) -> bool:
    """The server span ends last, so it can reach Jaeger in a later batch than its children."""
    return len(spans) >= 2 and any(_is_server(s) for s in spans)


def _trace(jaeger: Jaeger, trace_id: str) -> list[Span]:
    def found() -> list[Span] | None:
        response = httpx.get(f"{jaeger.api}/traces/{trace_id}", timeout=5)
        if response.status_code != 200:
            return None
        data = response.json()["data"]
        spans: list[Span] = data[0]["spans"] if data else []
        return spans if _complete(spans) else None

    return eventually(found, timeout=30, what=f"trace {trace_id} with its server span in Jaeger")


def _server_span(spans: list[Span]) -> Span:
    (server,) = [s for s in spans if _is_server(s)]
    return server


def _children(spans: list[Span], parent: Span, system: str) -> list[Span]:
    return [
        s
        for s in spans
        if _tags(s).get("db.system.name") == system
        and _tags(s).get("span.kind") == "client"
        and any(r["spanID"] == parent["spanID"] for r in s["references"])
    ]


def _traceparent(trace_id: str, sampled: bool) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-{'01' if sampled else '00'}"}


def _serve(tmp_path: Path, jaeger: Jaeger, **extra: str) -> Any:
    service = f"floodgate-test-{uuid.uuid4().hex[:8]}"
    env = migrated_sqlite(tmp_path)
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="1.0",
        OTEL_BSP_SCHEDULE_DELAY="100",
        POD_NAME="floodgate-abc-123",
        POD_NAMESPACE="telemetry-test",
        **extra,
    )
    return service, start_server(env, tmp_path, workers=2)


def test_http_span_with_db_children_in_jaeger(jaeger: Jaeger, tmp_path: Path) -> None:
    service, server = _serve(tmp_path, jaeger)
    try:
        user = httpx.post(
            f"{server.url}/api/v1/users", json={"name": "T", "email": "t@example.com"}
        ).json()
        continued = uuid.uuid4().hex
        response = httpx.get(
            f"{server.url}/api/v1/users/{user['id']}", headers=_traceparent(continued, True)
        )
        assert response.status_code == 200
        unsampled = uuid.uuid4().hex
        httpx.get(f"{server.url}/api/v1/users/{user['id']}", headers=_traceparent(unsampled, False))
        httpx.get(f"{server.url}/healthz")

        spans = _trace(jaeger, continued)
        server_span = _server_span(spans)
        tags = _tags(server_span)
        assert server_span["operationName"] == "GET /api/v1/users/{user_id}"
        assert tags["http.route"] == "/api/v1/users/{user_id}"
        assert tags["http.request.method"] == "GET"
        assert tags["http.response.status_code"] == 200
        assert tags["url.path"] == f"/api/v1/users/{user['id']}"
        assert server_span["references"], "continues the caller's span (W3C traceparent)"
        queries = _children(spans, server_span, "sqlite")
        assert queries, spans
        assert all(_tags(q)["db.query.text"].lstrip().upper().startswith("SELECT") for q in queries)
        assert {q["operationName"] for q in queries} == {"SELECT users"}
        services = httpx.get(f"{jaeger.api}/services").json()["data"]
        assert service in services

        # Root requests are sampled by our own decision (ratio 1.0 here) with the same ids.
        def root_traces() -> list[Any] | None:
            found = httpx.get(
                f"{jaeger.api}/traces",
                params={"service": service, "operation": "POST /api/v1/users", "limit": 5},
            ).json()["data"]
            return found if found and all(_complete(t["spans"]) for t in found) else None

        (root,) = eventually(root_traces, what="the POST's root trace")
        resource = next(iter(root["processes"].values()))
        resource_tags = {t["key"]: t["value"] for t in resource["tags"]}
        assert resource_tags["k8s.pod.name"] == "floodgate-abc-123"
        assert resource_tags["k8s.namespace.name"] == "telemetry-test"
        assert resource_tags["service.version"]
        assert _children(root["spans"], _server_span(root["spans"]), "sqlite")

        missing = httpx.get(f"{jaeger.api}/traces/{unsampled}")
        assert missing.status_code == 404 or not missing.json()["data"]
        operations = httpx.get(f"{jaeger.api}/services/{service}/operations").json()["data"]
        assert operations
        assert not [op for op in operations if "healthz" in op or "metrics" in op]
    finally:
        server.terminate()


@pytest.mark.redis
def test_redis_child_spans_when_the_cache_uses_redis(
    jaeger: Jaeger, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Requires Redis spans as soon as the app sends the cache's commands to Redis."""
    _, server = _serve(tmp_path, jaeger, FLOODGATE_CACHE_URL=redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        before = int(client.info("stats")["total_commands_processed"])
        user = httpx.post(
            f"{server.url}/api/v1/users", json={"name": "R", "email": "r@example.com"}
        ).json()
        message = httpx.post(
            f"{server.url}/api/v1/messages", json={"user_id": user["id"], "body": "hi"}
        ).json()
        trace_ids = []
        for _ in range(2):  # a miss (fill) then a hit
            trace_id = uuid.uuid4().hex
            trace_ids.append(trace_id)
            httpx.get(
                f"{server.url}/api/v1/messages/{message['id']}",
                headers=_traceparent(trace_id, True),
            )
        # Our own INFO call and the two above are the only commands that are not the app's.
        assert int(client.info("stats")["total_commands_processed"]) - before > 2
        spans = _trace(jaeger, trace_ids[0])
        redis_spans = _children(spans, _server_span(spans), "redis")
        assert redis_spans, (
            f"no Redis child spans in {[s['operationName'] for s in spans]}: wrap the cache's "
            "client with floodgate.telemetry.instrument_redis(client, role='sidecar')"
        )
        assert all(_tags(s)["server.port"] == redis_server.port for s in redis_spans)
    finally:
        client.close()
        server.terminate()
