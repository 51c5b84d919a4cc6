"""The bundle on a real cluster: `helm install --wait` of the chart with the image built from
service/Dockerfile, traffic through the Service's ClusterIP, a RateLimitPolicy programmed into real
pods, a rolling update and a deleted pod under load, and `helm uninstall`.

The tests run in this order, on one install shared by every cluster test; test_uninstall.py (last
by name) removes it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from scripts.cluster import host
from scripts.cluster.cluster import Cluster
from scripts.cluster.install import CHART, NAMESPACE, RELEASE, Installed
from scripts.cluster.load import Load

pytestmark = pytest.mark.cluster

API_SELECTOR = "app.kubernetes.io/instance=floodgate,app.kubernetes.io/component=api"
RESULTS: dict[str, Any] = {}


def kget(cluster: Cluster, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=True)
    return json.loads(out.stdout)


def http(
    method: str, url: str, body: object | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return (
                int(resp.status),
                {k.lower(): v for k, v in resp.headers.items()},
                bytes(resp.read()),
            )
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, bytes(exc.read())


def api_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = kget(cluster, "-n", NAMESPACE, "pods", "-l", API_SELECTOR)["items"]
    return [p for p in pods if p["metadata"].get("deletionTimestamp") is None]


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def pod_metrics(pod: dict[str, Any]) -> str:
    status, _, body = http("GET", f"http://{pod['status']['podIP']}:8000/metrics")
    assert status == 200
    return body.decode()


def wait_for(what: str, check: Any, timeout: float = 120.0, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# ------------------------------------------------------------------------------ 1. install


def test_helm_install_makes_every_pod_ready(cluster: Cluster, installed: Installed) -> None:
    deployments = kget(cluster, "-n", NAMESPACE, "deployments")["items"]
    names = {d["metadata"]["name"] for d in deployments}
    assert {
        "floodgate",
        "floodgate-operator",
        "floodgate-dev-postgres",
        "floodgate-dev-redis",
    } <= names
    for d in deployments:
        available = {c["type"]: c["status"] for c in d["status"].get("conditions", [])}.get(
            "Available"
        )
        assert available == "True", d["metadata"]["name"]
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"], d["metadata"]["name"]
    # The pre-install migration Job ran to completion (its hook policy deletes it on success, so
    # the job controller's event is what is left of it).
    events = kget(
        cluster, "-n", NAMESPACE, "events", "--field-selector", "involvedObject.kind=Job"
    )["items"]
    completed = [
        e for e in events if e["reason"] == "Completed" and "migrat" in e["involvedObject"]["name"]
    ]
    assert completed, [f"{e['involvedObject']['name']}: {e['reason']}" for e in events]

    pods = api_pods(cluster)
    assert len(pods) == 2
    for pod in pods:
        # The cache Redis is a native sidecar: an init container with restartPolicy Always, running.
        (sidecar,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "cache"]
        assert sidecar["restartPolicy"] == "Always"
        (state,) = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "cache"]
        assert state["ready"], state
        assert "running" in state["state"], state
        assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["automountServiceAccountToken"] is False
    (operator,) = kget(
        cluster, "-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/component=operator"
    )["items"]
    ready = {c["type"]: c["status"] for c in operator["status"]["conditions"]}["Ready"]
    assert ready == "True"
    # Its credentials are the projected ServiceAccount token (kube-api-access volume).
    projected = [v for v in operator["spec"]["volumes"] if "projected" in v]
    assert any("serviceAccountToken" in s for v in projected for s in v["projected"]["sources"])
    RESULTS["install_seconds"] = installed.timings
    print(f"\ninstall timings (s): {installed.timings}")


# ------------------------------------------------------------------------------ 2. traffic


def test_crud_readyz_and_metrics_through_the_service(installed: Installed) -> None:
    url = installed.service_url
    email = f"{uuid.uuid4().hex[:10]}@cluster.example"
    status, headers, body = http("POST", f"{url}/api/v1/users", {"email": email, "name": "Ada"})
    assert status == 201, body
    user = json.loads(body)
    status, _, body = http("GET", f"{url}/api/v1/users/{user['id']}")
    assert status == 200
    assert json.loads(body)["email"] == email
    status, _, body = http("GET", f"{url}/api/v1/users?per_page=5")
    assert status == 200
    assert json.loads(body)["items"]
    status, _, body = http("PATCH", f"{url}/api/v1/users/{user['id']}", {"name": "Grace"})
    assert status == 200
    assert json.loads(body)["name"] == "Grace"
    status, _, body = http(
        "POST", f"{url}/api/v1/messages", {"user_id": user["id"], "body": "hello"}
    )
    assert status == 201, body
    status, _, _ = http("DELETE", f"{url}/api/v1/users/{user['id']}")
    assert status == 204
    status, headers, body = http("GET", f"{url}/api/v1/users/{user['id']}")
    assert status == 404
    assert headers["content-type"].startswith("application/problem+json")
    status, _, body = http("GET", f"{url}/readyz")
    assert status == 200, body
    status, headers, body = http("GET", f"{url}/metrics")
    assert status == 200
    assert b"http_requests_total" in body
    assert b"floodgate_cache_lookups_total" in body


def test_reads_hit_the_sidecar_cache(cluster: Cluster, installed: Installed) -> None:
    url = installed.service_url
    status, _, body = http(
        "POST", f"{url}/api/v1/users", {"email": f"{uuid.uuid4().hex[:10]}@c.example", "name": "L2"}
    )
    assert status == 201
    user_id = json.loads(body)["id"]
    pods = api_pods(cluster)
    before = sum(
        metric_sum(pod_metrics(p), "floodgate_cache_lookups_total", tier="l2", result="hit")
        for p in pods
    )
    # Each pod runs two worker processes with an L1 each: the worker that did not fill its own L1
    # finds the entry in the pod's sidecar. Fresh connections spread the reads over both workers.
    for _ in range(60):
        assert http("GET", f"{url}/api/v1/users/{user_id}")[0] == 200
    after = sum(
        metric_sum(pod_metrics(p), "floodgate_cache_lookups_total", tier="l2", result="hit")
        for p in pods
    )
    assert after > before, "no read was answered by a sidecar"
    # And the sidecar Redis says so itself.
    hits = 0
    for pod in pods:
        info = cluster.kubectl(
            "-n",
            NAMESPACE,
            "exec",
            pod["metadata"]["name"],
            "-c",
            "cache",
            "--",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "info",
            "stats",
            check=True,
        ).stdout
        hits += int(re.search(r"keyspace_hits:(\d+)", info).group(1))  # type: ignore[union-attr]
    assert hits > 0


# ------------------------------------------------------------------------------ 3. limits


POLICY = """\
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata:
  name: cluster-test-global
  namespace: floodgate
spec:
  mode: Enforce
  failureMode: Open
  rules:
    - name: global-user-reads
      match:
        methods: [GET]
        path: {type: PathPrefix, value: /api/v1/users}
      key: Global
      limit: {requests: 10, period: 1m}
"""


def test_policy_is_programmed_into_every_pod_and_limits_globally(
    cluster: Cluster, installed: Installed
) -> None:
    applied = cluster.kubectl("apply", "-f", "-", input=POLICY)
    assert applied.returncode == 0, applied.stderr

    def programmed() -> dict[str, Any] | None:
        rlp = kget(cluster, "-n", NAMESPACE, "ratelimitpolicy", "cluster-test-global")
        st = rlp.get("status", {})
        cond = {c["type"]: c for c in st.get("conditions", [])}.get("Programmed", {})
        ok = cond.get("status") == "True" and st.get("appliedPods") == st.get("readyPods") == 2
        return st if ok else None

    status = wait_for("Programmed with appliedPods == readyPods == 2", programmed, timeout=90)
    RESULTS["policy_status"] = status
    url = installed.service_url
    pods = api_pods(cluster)
    served_before = [
        metric_sum(pod_metrics(p), "floodgate_ratelimit_decisions_total") for p in pods
    ]
    codes = [http("GET", f"{url}/api/v1/users?per_page=1") for _ in range(40)]
    allowed = sum(1 for s, _, _ in codes if s == 200)
    limited = [(s, h) for s, h, _ in codes if s == 429]
    served_after = [metric_sum(pod_metrics(p), "floodgate_ratelimit_decisions_total") for p in pods]
    # Both pods answered, yet together they allowed one quota: per-pod counting would allow ~20.
    assert all(
        after - before >= 3 for before, after in zip(served_before, served_after, strict=True)
    ), (
        served_before,
        served_after,
    )
    assert 1 <= allowed <= 11, allowed
    assert len(limited) == 40 - allowed
    headers = limited[0][1]
    assert "ratelimit" in headers, headers
    assert "retry-after" in headers, headers
    RESULTS["policy_allowed_of_40"] = allowed

    invalid = POLICY.replace("requests: 10", "requests: -5").replace(
        "cluster-test-global", "cluster-test-bad"
    )
    rejected = cluster.kubectl("apply", "-f", "-", input=invalid)
    assert rejected.returncode != 0, rejected.stderr
    assert "requests" in rejected.stderr, rejected.stderr
    deleted = cluster.kubectl(
        "-n", NAMESPACE, "delete", "ratelimitpolicy", "cluster-test-global", "--wait=true"
    )
    assert deleted.returncode == 0, deleted.stderr
    # With the policy gone the reads flow again (the operator withdrew it from every pod).
    wait_for(
        "reads allowed again",
        lambda: http("GET", f"{url}/api/v1/users?per_page=1")[0] == 200,
        timeout=60,
    )


# ------------------------------------------------------------------------------ 4. disruption


def test_rolling_update_and_pod_deletion_fail_no_request(
    cluster: Cluster, installed: Installed
) -> None:
    url = installed.service_url
    status, _, body = http(
        "POST",
        f"{url}/api/v1/users",
        {"email": f"{uuid.uuid4().hex[:10]}@r.example", "name": "Roll"},
    )
    assert status == 201
    user_id = json.loads(body)["id"]
    paths = [f"/api/v1/users/{user_id}", "/api/v1/users?per_page=2", "/healthz"]
    old_pods = {p["metadata"]["name"] for p in api_pods(cluster)}
    with Load(url, paths, threads=4, max_seconds=300) as load:
        time.sleep(3)
        t = time.monotonic()
        upgraded = cluster.helm(
            "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
            "--set-string", f"api.podAnnotations.rolled={int(time.time())}",
            "--wait", "--timeout=300s",
            timeout=400,
        )  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stderr
        rollout_s = time.monotonic() - t
        new_pods = {p["metadata"]["name"] for p in api_pods(cluster)}
        assert not new_pods & old_pods, "the upgrade did not replace the pods"
        during_rollout = load.outcome.failed
        victim = sorted(new_pods)[0]
        t = time.monotonic()
        deleted = cluster.kubectl(
            "-n", NAMESPACE, "delete", "pod", victim, "--wait=true", timeout=120
        )
        assert deleted.returncode == 0, deleted.stderr
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            "deployment/floodgate",
            "--timeout=120s",
            check=True,
        )
        delete_s = time.monotonic() - t
        time.sleep(3)
        outcome = load.stop()
    RESULTS["disruption"] = {
        "requests": outcome.requests,
        "failed": outcome.failed,
        "failed_during_rollout": during_rollout,
        "rollout_seconds": round(rollout_s, 1),
        "pod_delete_to_available_seconds": round(delete_s, 1),
        "requests_per_second": round(outcome.requests / outcome.seconds, 1),
    }
    print(f"\ndisruption: {RESULTS['disruption']}")
    assert outcome.requests > 100
    assert outcome.failed == 0, outcome.samples


# ------------------------------------------------------------------------------ isolation

PROBE = """\
import socket, sys
def tcp(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError as exc:
        return type(exc).__name__
def name(host):
    try:
        socket.getaddrinfo(host, 80)
        return "resolved"
    except OSError as exc:
        return type(exc).__name__
print(tcp("floodgate-dev-postgres", 5432), tcp(sys.argv[1], 80), name("example.com"))
"""


def test_pods_reach_the_cluster_and_nothing_beyond(cluster: Cluster, installed: Installed) -> None:
    """The harness's promise: pods reach pods and Services; not the host's network, not outside
    DNS. The probe runs in an API pod (python is there)."""
    gateway = host.run("ip", "-4", "route", "show", "default").stdout.split()[2]
    pod = api_pods(cluster)[0]["metadata"]["name"]
    out = cluster.kubectl(
        "-n", NAMESPACE, "exec", pod, "-c", "api", "--", "python", "-c", PROBE, gateway, timeout=60
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    in_cluster, off_machine, outside_name = out.stdout.split()
    assert in_cluster == "open"  # a Service by name: DNS and kube-proxy work from a pod
    assert off_machine != "open"  # the machine's gateway: dropped by FLOODGATE-CLUSTER-FWD
    assert outside_name == "gaierror"  # CoreDNS answers only cluster.local
