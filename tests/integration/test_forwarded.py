"""Forwarded client addresses through a real `floodgate serve`: only FLOODGATE_TRUSTED_PROXIES
decides whose X-Forwarded-For / Forwarded is believed, under uvicorn and gunicorn alike."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, start_server
from tests.support.services import RedisServer

pytestmark = pytest.mark.redis

LIMIT = 3


def _serve(redis_server: RedisServer, tmp_path: Path, workers: int, **env: str) -> ServerProcess:
    # A fresh policy name per server: counters of earlier tests in the shared Redis stay apart.
    name = f"fwd-{uuid.uuid4().hex[:8]}"
    policy = tmp_path / f"{name}.yaml"
    policy.write_text(
        f"""
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {{name: {name}}}
spec:
  mode: Enforce
  failureMode: Closed
  rules:
    - name: per-client
      match: {{path: {{type: PathPrefix, value: /limited}}}}
      key: ClientIP
      limit: {{requests: {LIMIT}, period: 1h}}
      burst: 0
"""
    )
    return start_server(
        {
            "FLOODGATE_POLICY_FILE": str(policy),
            # One shared counter store: every gunicorn worker sees the same allowance.
            "FLOODGATE_LIMITS_URL": redis_server.url,
            "FLOODGATE_GC_FREEZE": "false",
            **env,
        },
        tmp_path,
        workers=workers,
        timeout=120,  # gunicorn workers import everything anew, slowly on a busy machine
    )


def _statuses(server: ServerProcess, headers: list[dict[str, str]]) -> list[int]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return [client.get("/limited", headers=h).status_code for h in headers]


ROTATING = {
    "x-forwarded-for": [{"X-Forwarded-For": f"198.51.100.{i}"} for i in range(12)],
    "forwarded": [{"Forwarded": f"for=198.51.100.{i}"} for i in range(12)],
    "forwarded-ipv6": [{"Forwarded": f'for="[2001:db8:{i}::1]:4711"'} for i in range(12)],
    "both": [
        {"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"}
        for i in range(12)
    ],
}


@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn-2-workers"])
def test_forwarded_headers_from_loopback_are_ignored_without_trusted_proxies(
    redis_server: RedisServer, tmp_path: Path, workers: int
) -> None:
    # uvicorn and gunicorn trust forwarded headers from 127.0.0.1 by default; with
    # FLOODGATE_TRUSTED_PROXIES empty, rotating them must not earn a fresh allowance each time.
    server = _serve(redis_server, tmp_path, workers)
    try:
        for kind, headers in ROTATING.items():
            statuses = _statuses(server, headers)
            assert statuses.count(404) <= LIMIT, (kind, statuses)
            assert statuses.count(429) >= len(headers) - LIMIT, (kind, statuses)
    finally:
        server.terminate()


@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn-2-workers"])
def test_forwarded_client_is_used_behind_a_trusted_proxy(
    redis_server: RedisServer, tmp_path: Path, workers: int
) -> None:
    server = _serve(redis_server, tmp_path, workers, FLOODGATE_TRUSTED_PROXIES="127.0.0.1/32")
    try:
        clients = [
            {"X-Forwarded-For": "203.0.113.1"},
            {"X-Forwarded-For": "192.0.2.99, 203.0.113.2"},  # the spoofed left hop is skipped
            {"Forwarded": "for=203.0.113.3;proto=https"},
            {"Forwarded": 'for="[2001:db8:cafe::17]:4711"'},
            {"Forwarded": 'for=192.0.2.99, for="203.0.113.4:8080"'},
            {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.5"},
        ]
        for headers in clients:
            # Each forwarded client has its own allowance, and it is enforced.
            assert _statuses(server, [headers] * (LIMIT + 2)) == [404] * LIMIT + [429] * 2, headers
        # The same client through either header is the same client.
        assert _statuses(server, [{"Forwarded": "for=203.0.113.1"}]) == [429]
        # Forwarded hops that are not addresses end at the proxy itself: one shared allowance.
        opaque = [{"Forwarded": f"for=_hidden{i}"} for i in range(4)] + [
            {"Forwarded": "for=unknown"}
        ]
        assert _statuses(server, opaque) == [404] * LIMIT + [429] * 2
    finally:
        server.terminate()
