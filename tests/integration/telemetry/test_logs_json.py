"""The server's output under gunicorn: every line is one JSON object (arbiter, workers, uvicorn,
our access log), and a sampled request's lines carry its trace id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.integration.telemetry.conftest import eventually, migrated_sqlite
from tests.support.server import start_server


def test_every_line_is_json_and_sampled_requests_carry_their_trace(tmp_path: Path) -> None:
    env = migrated_sqlite(tmp_path)
    env.update(
        FLOODGATE_ACCESS_LOG_SAMPLE_RATE="1.0",
        FLOODGATE_CURSOR_SECRET="x" * 40,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    server = start_server(env, tmp_path, workers=2)
    trace_id = uuid.uuid4().hex
    try:
        headers = {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}
        user = httpx.post(
            f"{server.url}/api/v1/users?token=abc123",
            json={"name": "L", "email": "logs@example.com"},
            headers=headers,
        )
        assert user.status_code == 201
        httpx.get(f"{server.url}/api/v1/users/{user.json()['id']}")  # unsampled
        httpx.get(f"{server.url}/nope")

        def access_lines() -> list[dict[str, object]] | None:
            lines = [json.loads(x) for x in server.output().splitlines() if x.strip()]
            found = [x for x in lines if x.get("logger") == "floodgate.access"]
            return found if len(found) >= 3 else None

        assert len(eventually(access_lines, what="three access log lines")) == 3, "logged once"
    finally:
        server.terminate()
    lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any non-JSON line
    assert len(records) == len(lines)
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "uvicorn.error", "floodgate.access"} <= loggers
    sampled, unsampled, missing = [r for r in records if r["logger"] == "floodgate.access"]
    assert sampled["trace_id"] == trace_id
    assert sampled["trace_sampled"] is True
    assert sampled["http_route"] == "/api/v1/users"
    assert unsampled["trace_sampled"] is False
    assert len(str(unsampled["trace_id"])) == 32
    assert unsampled["trace_id"] != trace_id
    assert missing["http_route"] == "none"
    output = server.output()
    assert "abc123" not in output, "query strings are not logged"
    assert "logs@example.com" not in output, "bodies are not logged"
    assert "x" * 40 not in output
    for record in records:
        assert {"ts", "level", "logger", "msg", "pid"} <= record.keys()
