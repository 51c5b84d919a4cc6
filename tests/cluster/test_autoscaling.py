"""The chart's HPA on the real cluster: metrics-server feeds it the API container's CPU, it scales
the API from 1 to 2+ pods under load through the Service and back to 1 after, with no failed
request, and the RateLimitPolicy status follows the ready pods. Runs before test_bundle (which ends
by uninstalling) and puts the install back as it found it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from scripts.cluster.cluster import Cluster
from scripts.cluster.install import CHART, NAMESPACE, RELEASE, Installed
from scripts.cluster.load import Load

from tests.cluster.test_bundle import api_pods, http, kget, wait_for

pytestmark = pytest.mark.cluster

SHADOW_POLICY = """\
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata:
  name: hpa-watch
  namespace: floodgate
spec:
  mode: Shadow
  failureMode: Open
  rules:
    - name: count-only
      match:
        path: {type: PathPrefix, value: /api/v1/}
      key: Global
      limit: {requests: 1000000, period: 1s}
"""
# Production behaviour stays the chart default; the test shortens the windows so a scale-down
# happens in seconds instead of five minutes.
TEST_AUTOSCALING = {
    "autoscaling": {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 50,
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 15,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
            },
        },
    },
}


def ready_replicas(cluster: Cluster) -> int:
    deployment = kget(cluster, "-n", NAMESPACE, "deployment", RELEASE)
    return int(deployment["status"].get("readyReplicas") or 0)


def policy_ready_pods(cluster: Cluster) -> int | None:
    st = kget(cluster, "-n", NAMESPACE, "ratelimitpolicy", "hpa-watch").get("status", {})
    ready = st.get("readyPods")
    return None if ready is None else int(ready)


def hpa(cluster: Cluster) -> dict[str, Any]:
    return kget(cluster, "-n", NAMESPACE, "hpa", RELEASE)  # type: ignore[no-any-return]


def test_hpa_scales_out_under_load_and_back_in(cluster: Cluster, installed: Installed) -> None:
    url = installed.service_url
    status, _, body = http(
        "POST", f"{url}/api/v1/users", {"email": f"{uuid.uuid4().hex[:10]}@h.example", "name": "H"}
    )
    assert status == 201
    user_id = json.loads(body)["id"]
    paths = [f"/api/v1/users/{user_id}", "/api/v1/users?per_page=3"]
    assert cluster.kubectl("apply", "-f", "-", input=SHADOW_POLICY).returncode == 0
    values = cluster.layout.etc / "values-autoscaling.json"
    values.write_text(json.dumps(TEST_AUTOSCALING))
    results: dict[str, Any] = {}
    try:
        upgraded = cluster.helm(
            "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "-f", str(values),
            "--wait", "--timeout=300s", timeout=400,
        )  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stderr
        # The HPA sees the container's CPU (metrics-server works) and, idle, settles at its minimum.
        wait_for(
            "HPA metrics",
            lambda: hpa(cluster)["status"].get("currentMetrics"),
            timeout=180,
            every=2,
        )
        wait_for(
            "1 replica at rest",
            lambda: ready_replicas(cluster) == 1 and len(api_pods(cluster)) == 1,
            timeout=180,
            every=2,
        )
        wait_for("readyPods == 1", lambda: policy_ready_pods(cluster) == 1, timeout=60)
        with Load(url, paths, threads=6, max_seconds=240) as load:
            t = time.monotonic()
            wait_for(
                "a second pod Ready", lambda: ready_replicas(cluster) >= 2, timeout=200, every=1
            )
            results["load_start_to_second_pod_ready_s"] = round(time.monotonic() - t, 1)
            wait_for("readyPods >= 2", lambda: (policy_ready_pods(cluster) or 0) >= 2, timeout=60)
            results["max_replicas_seen"] = ready_replicas(cluster)
            time.sleep(5)  # the new pod takes traffic under load
            heavy = load.stop()
        # A light load carries on while the HPA scales back in: removed pods must drain cleanly.
        with Load(url, paths, threads=1, max_seconds=300, pause=0.05) as light:
            t = time.monotonic()
            wait_for(
                "back to 1 replica",
                lambda: (
                    hpa(cluster)["status"].get("desiredReplicas") == 1
                    and len(api_pods(cluster)) == 1
                ),
                timeout=240,
                every=1,
            )
            results["load_end_to_scale_in_s"] = round(time.monotonic() - t, 1)
            wait_for("readyPods == 1 again", lambda: policy_ready_pods(cluster) == 1, timeout=60)
            time.sleep(3)
            calm = light.stop()
        results["heavy"] = heavy.summary()
        results["light"] = calm.summary()
        print(f"\nautoscaling: {results}")
        assert heavy.failed == 0, heavy.samples
        assert calm.failed == 0, calm.samples
    finally:
        cluster.kubectl(
            "-n", NAMESPACE, "delete", "ratelimitpolicy", "hpa-watch", "--ignore-not-found"
        )
        # The HPA goes first, so it cannot scale the Deployment between helm's apply and its
        # deletion; under server-side apply the HPA's controller owns `.spec.replicas`, which
        # helm takes back only with --force-conflicts (docs/operations.md, Scaling).
        cluster.kubectl("-n", NAMESPACE, "delete", "hpa", RELEASE, "--ignore-not-found", "--wait")
        restored = cluster.helm(
            "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
            "--set", "autoscaling.enabled=false", "--set", "api.replicas=2", "--force-conflicts",
            "--wait", "--timeout=300s", timeout=400,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        spec = kget(cluster, "-n", NAMESPACE, "deployment", RELEASE)["spec"]
        assert spec["replicas"] == 2, "helm did not take .spec.replicas back from the HPA"
