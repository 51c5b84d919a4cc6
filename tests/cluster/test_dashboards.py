"""Every panel query of every dashboard against the real cluster, and one picture per dashboard.

Debian's Prometheus scrapes the API pods as the chart's ServiceMonitor asks (the Service's ready
endpoints on port `http`, labelled namespace/service/pod/container: Debian's build has no Kubernetes
service discovery, so the targets file is rewritten from the EndpointSlices every 3 s), the
kubelet's cAdvisor and kube-state-metrics, under a short load that makes the HPA add a pod. A
query that comes back empty fails by name. FLOODGATE_DASHBOARD_PNG_DIR=docs/dashboards refreshes
the committed pictures."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripts.cluster import config as c
from scripts.cluster import proc
from scripts.cluster.cluster import Cluster, free_port
from scripts.cluster.install import CHART, NAMESPACE, RELEASE, Installed
from scripts.cluster.load import Load

from tests.cluster.test_bundle import http, wait_for
from tests.integration.telemetry.test_dashboards_prometheus import PanelQuery, _queries

pytestmark = pytest.mark.cluster

SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$namespace": NAMESPACE,
    "$service": RELEASE,
    "$hpa": RELEASE,
}
# Grafana's `pod` variable (All): label_values(http_requests_total{namespace, service}, pod).
POD_VARIABLE = f'group by (pod) (last_over_time(http_requests_total{{namespace="{NAMESPACE}", service="{RELEASE}"}}[15m]))'  # noqa: E501
POLICIES = """\
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: dash-reads, namespace: floodgate}
spec:
  mode: Enforce
  failureMode: Open
  rules:
    - name: per-client-user-reads
      match: {methods: [GET], path: {type: PathPrefix, value: /api/v1/users}}
      key: ClientIP
      limit: {requests: 600, period: 1m}
      burst: 50
---
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: dash-writes, namespace: floodgate}
spec:
  mode: Shadow
  failureMode: Open
  rules:
    - name: all-writes
      match: {methods: [POST, PATCH, DELETE], path: {type: PathPrefix, value: /api/v1/}}
      key: Global
      limit: {requests: 1, period: 1s}
      burst: 1
"""
# An HPA for the scaling dashboard, and a CPU limit on the sidecar so cAdvisor has CFS
# (throttling) series: the app itself has none by design (no CPU limit on the API container).
DASHBOARD_VALUES = {
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 3},
    "cacheSidecar": {"resources": {"limits": {"cpu": "500m", "memory": "192Mi"}}},
}


def prometheus_config(targets: Path, pki: Path, ksm_port: int) -> str:
    tls = {
        "ca_file": str(pki / "ca.crt"),
        "cert_file": str(pki / "admin.crt"),
        "key_file": str(pki / "admin.key"),
    }
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [
            {
                # What the chart's ServiceMonitor asks the Prometheus Operator for; the targets come
                # from the Service's EndpointSlices (see api_targets: Debian's Prometheus has no
                # Kubernetes service discovery compiled in).
                "job_name": "floodgate",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "5s"}],
            },
            {
                "job_name": "kubelet",
                "scheme": "https",
                "metrics_path": "/metrics/cadvisor",
                "tls_config": tls,
                "static_configs": [{"targets": [f"{c.NODE_IP}:10250"]}],
            },
            {
                "job_name": "kube-state-metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{ksm_port}"]}],
            },
        ],
    }
    return json.dumps(config)


def api_targets(cluster: Cluster) -> list[dict[str, Any]]:
    """The ServiceMonitor's view: every ready endpoint of the Service on its `http` port, labelled
    as the Prometheus Operator labels them (namespace, service, pod, container, endpoint, job)."""
    slices = json.loads(cluster.kubectl(
        "-n", NAMESPACE, "get", "endpointslices", "-o", "json",
        "-l", f"kubernetes.io/service-name={RELEASE}", check=True,
    ).stdout)["items"]  # fmt: skip
    groups = []
    for sl in slices:
        ports = [p["port"] for p in sl.get("ports") or [] if p.get("name") == "http"]
        for ep in sl.get("endpoints") or []:
            if not ep.get("conditions", {}).get("ready") or not ports:
                continue
            labels = {
                "namespace": NAMESPACE,
                "service": RELEASE,
                "job": RELEASE,
                "pod": ep["targetRef"]["name"],
                "container": "api",
                "endpoint": "http",
            }
            groups.append({"targets": [f"{ep['addresses'][0]}:{ports[0]}"], "labels": labels})
    return groups


@dataclass
class Observed:
    api: str
    work: Path
    started: float
    ended: float
    pods: str  # the `pod` variable's "All": every API pod seen, as Grafana's regex

    def substitute(self, text: str) -> str:
        for name, value in {**SUBSTITUTIONS, "$pod": self.pods}.items():
            text = text.replace(name, value)
        return text


class TargetRefresher(threading.Thread):
    """Kubernetes service discovery's part, done from outside: rewrite the file_sd targets from
    the Service's EndpointSlices every few seconds, so pods the HPA adds are scraped too."""

    def __init__(self, cluster: Cluster, path: Path) -> None:
        super().__init__(daemon=True)
        self.cluster, self.path, self.stopped = cluster, path, threading.Event()
        self.refresh()

    def refresh(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(api_targets(self.cluster)))
        partial.replace(self.path)  # Prometheus never reads a half-written file

    def run(self) -> None:
        while not self.stopped.wait(3):
            self.refresh()


def query(api: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def observed(cluster: Cluster, installed: Installed) -> Iterator[Observed]:
    work = cluster.layout.root / "dashboards"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    values = work / "values.json"
    values.write_text(json.dumps(DASHBOARD_VALUES))
    upgraded = cluster.helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "-f", str(values),
        "--wait", "--timeout=300s", timeout=400,
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    assert cluster.kubectl("apply", "-f", "-", input=POLICIES).returncode == 0
    ksm_port, prom_port = free_port(), free_port()
    ksm = proc.spawn(
        "kube-state-metrics",
        [str(c.TOOLS_BIN / "kube-state-metrics"), f"--kubeconfig={cluster.kubeconfig}",
         "--host=127.0.0.1", f"--port={ksm_port}",
         "--telemetry-host=127.0.0.1", f"--telemetry-port={free_port()}",
         f"--namespaces={NAMESPACE}", "--resources=horizontalpodautoscalers,pods,deployments"],
        work,
    )  # fmt: skip
    # The HPA (minReplicas 2) owns the replica count now: wait for it before listing the targets.
    wait_for("2 API pods ready", lambda: len(api_targets(cluster)) == 2, timeout=180, every=2)
    targets = work / "floodgate-targets.json"
    refresher = TargetRefresher(cluster, targets)
    refresher.start()
    config = work / "prometheus.yml"
    config.write_text(prometheus_config(targets, cluster.layout.pki, ksm_port))
    prometheus = proc.spawn(
        "prometheus",
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        work,
    )  # fmt: skip
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        up = 'up{job=~"floodgate|kubelet|kube-state-metrics"}'
        wait_for(
            "every target up",
            lambda: len([r for r in _safe(api, up) if r["value"][1] == "1"]) >= 4,
            timeout=120,
        )
        url = installed.service_url
        user = json.loads(
            http(
                "POST",
                f"{url}/api/v1/users",
                {"email": f"{uuid.uuid4().hex[:8]}@d.example", "name": "D"},
            )[2]
        )
        http("POST", f"{url}/api/v1/messages", {"user_id": user["id"], "body": "dash"})
        paths = [
            f"/api/v1/users/{user['id']}",
            "/api/v1/users?per_page=5",
            "/api/v1/messages?limit=5",
            "/nope",
        ]
        started = time.time()
        with Load(url, paths, threads=4, max_seconds=45, expect=frozenset({200, 404, 429})):
            for i in range(30):  # writes too: created, conflict, invalid
                http(
                    "POST",
                    f"{url}/api/v1/users",
                    {"email": f"{uuid.uuid4().hex[:8]}-{i}@d.example", "name": "W"},
                )
                http("POST", f"{url}/api/v1/users", {"name": ""})
                time.sleep(1)
        ended = time.time()
        wait_for(
            "scrapes after the load",
            lambda: float(_safe(api, "max(timestamp(up))")[0]["value"][1]) > ended + 6,
        )
        pods = "|".join(sorted(r["metric"]["pod"] for r in query(api, POD_VARIABLE)))
        yield Observed(api, work, started, ended, pods)
    finally:
        refresher.stopped.set()
        proc.stop(prometheus)
        proc.stop(ksm)
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "delete",
            "ratelimitpolicy",
            "dash-reads",
            "dash-writes",
            "--ignore-not-found",
        )
        cluster.helm(
            "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
            "--set", "autoscaling.enabled=false", "--set", "api.replicas=2",
            "--set", "cacheSidecar.resources.limits.cpu=null", "--wait", "--timeout=300s",
            timeout=400,
        )  # fmt: skip


def _safe(api: str, expr: str) -> list[dict[str, Any]]:
    try:
        return query(api, expr)
    except (httpx.HTTPError, AssertionError, ValueError, IndexError):
        return []


@pytest.mark.parametrize("panel", _queries(), ids=lambda q: q.id)
def test_every_panel_query_returns_data(observed: Observed, panel: PanelQuery) -> None:
    expr = observed.substitute(panel.expr)
    assert "$" not in expr
    result = query(observed.api, expr)
    assert result, f"no data for {panel.id}: {expr}"


def test_dashboards_render_to_pictures(observed: Observed) -> None:
    from grafana.gen.picture import render_dashboard

    def query_range(expr: str) -> Any:
        body = httpx.get(
            f"{observed.api}/query_range",
            params={
                "query": expr,
                "start": observed.started - 10,
                "end": observed.ended + 10,
                "step": "5",
            },
            timeout=20,
        ).json()
        assert body["status"] == "success", body
        return [
            (r["metric"], [(float(t), float(v)) for t, v in r["values"]])
            for r in body["data"]["result"]
        ]

    # FLOODGATE_DASHBOARD_PNG_DIR=docs/dashboards refreshes the committed pictures.
    out_dir = Path(os.environ.get("FLOODGATE_DASHBOARD_PNG_DIR") or observed.work / "png")
    out_dir.mkdir(parents=True, exist_ok=True)
    empty: list[str] = []
    for path in sorted((c.REPO_ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        png = out_dir / f"{path.stem}.png"
        empty += [
            f"{path.stem}:{e}"
            for e in render_dashboard(dashboard, query_range, png, observed.substitute)
        ]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not empty, f"panels drawn without data: {empty}"
