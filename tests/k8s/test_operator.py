"""End to end on the real control plane: kubectl apply a RateLimitPolicy → the operator publishes it
through a real Redis → two real API server processes enforce it, and the CR's status says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.k8s import ControlPlane
from tests.support.operator import OperatorProcess, eventually, start_operator
from tests.support.server import FLOODGATE, ServerProcess, start_server
from tests.support.services import RedisServer, start_redis

pytestmark = [pytest.mark.k8s, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "k8s" / "crds" / "ratelimitpolicies.floodgate.dev.yaml"
T = TypeVar("T")


def policy(name: str, namespace: str, requests: int, *, path: str = "/api/v1/users") -> str:
    return json.dumps(
        {
            "apiVersion": "floodgate.dev/v1alpha1",
            "kind": "RateLimitPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "rules": [
                    {
                        "name": "per-client",
                        "match": {
                            "methods": ["GET"],
                            "path": {"type": "PathPrefix", "value": path},
                        },
                        "key": "ClientIP",
                        "limit": {"requests": requests, "period": "1m"},
                    }
                ]
            },
        }
    )


def start_test_operator(cp: ControlPlane, redis: RedisServer, workdir: Path) -> OperatorProcess:
    return start_operator(cp.client_env({"FLOODGATE_LIMITS_URL": redis.url}), workdir)


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    applied = control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    assert applied.returncode == 0, applied.stderr
    ready = control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/ratelimitpolicies.floodgate.dev",
        "--timeout=30s",
    )
    assert ready.returncode == 0, ready.stderr


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_pods(
    own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    workdir = tmp_path_factory.mktemp("pods")
    db = workdir / "api.db"
    base = {
        "FLOODGATE_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "FLOODGATE_LIMITS_URL": own_redis.url,
    }
    subprocess.run([str(FLOODGATE), "migrate"], env={**os.environ, **base}, check=True, timeout=60)
    pods = [start_server({**base, "POD_NAME": f"api-{i}"}, workdir) for i in range(2)]
    yield pods
    for pod in pods:
        pod.terminate()


def quota_of(pod: ServerProcess) -> str | None:
    """The RateLimit-Policy field a pod sends for GET /api/v1/users (None when unlimited)."""
    response = httpx.get(f"{pod.url}/api/v1/users", params={"per_page": 1})
    field: str | None = response.headers.get("ratelimit-policy")
    return field


def status_of(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    got = cp.kubectl("get", "rlp", name, "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    status: dict[str, Any] = json.loads(got.stdout).get("status") or {}
    return status


def programmed(
    cp: ControlPlane, namespace: str, name: str, generation: int
) -> dict[str, Any] | None:
    status = status_of(cp, namespace, name)
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    ok = (
        status.get("observedGeneration") == generation
        and conditions.get("Programmed", {}).get("status") == "True"
        and status.get("appliedPods") == status.get("readyPods") == 2
    )
    return status if ok else None


def test_policy_lifecycle_reaches_every_pod(
    control_plane: ControlPlane,
    crd: None,
    own_redis: RedisServer,
    api_pods: list[ServerProcess],
    unique_namespace: str,
    tmp_path: Path,
) -> None:
    cp, ns = control_plane, unique_namespace
    operator = start_test_operator(cp, own_redis, tmp_path)
    try:
        assert all(quota_of(pod) is None for pod in api_pods)

        # Create: both pods enforce it within 2 s, and the status says Programmed 2/2.
        applied = cp.kubectl("apply", "-f", "-", input=policy("reads", ns, 1000))
        assert applied.returncode == 0, applied.stderr
        _, propagation = eventually(
            lambda: all("q=1000" in (quota_of(p) or "") for p in api_pods), 10, "both pods to apply"
        )
        print(f"\npropagation create: {propagation:.3f}s")
        assert propagation < 2.0
        status, _ = eventually(lambda: programmed(cp, ns, "reads", 1), 10, "Programmed 2/2")
        assert status["conditions"][0]["type"] == "Accepted"
        table = cp.kubectl("get", "rlp", "-n", ns).stdout
        assert "True" in table, table
        assert "per-client" in table, table

        # Update: a new generation replaces the old limit everywhere; the counter is global.
        cp.kubectl("apply", "-f", "-", input=policy("reads", ns, 2))
        _, propagation = eventually(
            lambda: all("q=2" in (quota_of(p) or "") for p in api_pods), 10, "the new limit"
        )
        print(f"propagation update: {propagation:.3f}s")
        assert propagation < 2.0
        eventually(lambda: programmed(cp, ns, "reads", 2), 10, "generation 2 programmed")
        own_redis_flush_counters(own_redis)
        codes = [httpx.get(f"{api_pods[i % 2].url}/api/v1/users").status_code for i in range(4)]
        assert codes == [200, 200, 429, 429], codes

        # Invalid: rejected by the API server, naming the field.
        bad = policy("bad", ns, 10).replace('"1m"', '"1y"')
        rejected = cp.kubectl("apply", "-f", "-", input=bad)
        assert rejected.returncode != 0
        assert "spec.rules[0].limit.period" in rejected.stderr, rejected.stderr

        # Delete: limits lifted on every pod.
        deleted = cp.kubectl("delete", "rlp", "reads", "-n", ns, "--timeout=20s")
        assert deleted.returncode == 0, deleted.stderr
        eventually(lambda: all(quota_of(p) is None for p in api_pods), 10, "limits lifted")
    finally:
        operator.stop()


def own_redis_flush_counters(redis: RedisServer) -> None:
    """Start the enforcement check from a fresh window (earlier probes spent quota)."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis.url)
    for key in client.scan_iter(match="*", count=1000):
        name = key.decode()
        if not name.startswith("floodgate:policyset") and not name.startswith("floodgate:ack:"):
            client.delete(key)
    client.close()


def test_operator_restart_loses_nothing_and_deletion_never_waits_for_it(
    control_plane: ControlPlane,
    crd: None,
    own_redis: RedisServer,
    api_pods: list[ServerProcess],
    unique_namespace: str,
    tmp_path: Path,
) -> None:
    cp, ns = control_plane, unique_namespace
    operator = start_test_operator(cp, own_redis, tmp_path)
    try:
        cp.kubectl("apply", "-f", "-", input=policy("keep", ns, 500))
        cp.kubectl("apply", "-f", "-", input=policy("drop", ns, 700, path="/api/v1/messages"))
        eventually(lambda: programmed(cp, ns, "keep", 1), 15, "keep programmed")
        eventually(lambda: programmed(cp, ns, "drop", 1), 15, "drop programmed")
    finally:
        operator.stop()

    # With the operator down, deleting a policy must not hang (no finalizer) ...
    began = time.monotonic()
    gone = cp.kubectl("delete", "rlp", "drop", "-n", ns, "--timeout=10s")
    assert gone.returncode == 0, gone.stderr
    assert time.monotonic() - began < 10
    # ... and the pods keep enforcing the last published set meanwhile.
    assert all("q=500" in (quota_of(p) or "") for p in api_pods)

    operator = start_test_operator(cp, own_redis, tmp_path)
    try:

        def drop_lifted() -> bool:
            return all(
                "ratelimit-policy" not in httpx.get(f"{p.url}/api/v1/messages").headers
                for p in api_pods
            )

        eventually(drop_lifted, 15, "the policy deleted during the outage to be lifted")
        status = eventually(lambda: programmed(cp, ns, "keep", 1), 15, "keep still programmed")[0]
        assert status["readyPods"] == 2
        assert all("q=500" in (quota_of(p) or "") for p in api_pods)
    finally:
        operator.stop()
        cp.kubectl("delete", "rlp", "--all", "-n", ns, "--timeout=20s")
