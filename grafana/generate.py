"""Generate Floodgate's Grafana dashboards (grafana/dashboards/*.json) from this one file.

    python grafana/generate.py          # rewrite the JSON files
    python grafana/generate.py --check  # exit 1 if the committed JSON differs (CI, `make lint`)

Plain Python and the dashboard JSON model: nothing to install, every query visible here. Conventions
(checked by tests/unit/telemetry/test_dashboards.py, and every query evaluated against a real
Prometheus by tests/integration/telemetry/test_dashboards_prometheus.py):
a `datasource` variable and no `__inputs`; `namespace`/`service`/`pod` variables; counters only
under `rate(...[$__rate_interval])`; a unit and a description on every panel; stable uids; the
current schemaVersion; exemplars on latency panels. Series that only exist in Kubernetes
(cAdvisor `container_*`, kube-state-metrics `kube_*`) say so in their description.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 41  # Grafana 12
OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SEL = 'namespace="$namespace", service="$service"'
POD_SEL = f'{SEL}, pod=~"$pod"'
# cAdvisor labels pods and containers, not services: the pods come from our own metrics ($pod).
CONTAINER_SEL = 'namespace="$namespace", pod=~"$pod", container!="", container!="POD"'
K8S_ONLY = "Kubernetes only: needs cAdvisor (container_*) / kube-state-metrics (kube_*) series."


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    exemplars: bool = False
    kubernetes_only: bool = False
    width: int = 12
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[str, ...] = ("namespace", "service", "pod")
    extra_variables: tuple[dict[str, Any], ...] = field(default=())


def sel(base: str = SEL, **labels: str) -> str:
    """`base` plus exact-match labels: sel(status="5xx")."""
    return ", ".join([base, *(f'{k}="{v}"' for k, v in labels.items())])


def rate(metric: str, selector: str = SEL) -> str:
    return f"rate({metric}{{{selector}}}[{RATE}])"


def sum_rate(metric: str, by: str = "", selector: str = SEL) -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}({rate(metric, selector)})"


def per(numerator: str, denominator: str) -> str:
    """numerator / denominator, without NaN where the denominator is 0 (no traffic)."""
    return f"{numerator} / ({denominator} > 0)"


def quantile(q: float, metric: str, selector: str = SEL, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) ({rate(metric + '_bucket', selector)}))"


COUNT_BY_HANDLER = sum_rate("http_request_duration_seconds_count", "handler")
POOL_CAPACITY = f"sum by (pod) (floodgate_db_pool_max_connections{{{POD_SEL}}})"

# --- the dashboards ----------------------------------------------------------------------------

SERVICE = Dashboard(
    uid="floodgate-service",
    title="Floodgate / Service (RED + USE)",
    description="Requests, errors and latency per handler; saturation of processes, pool, pods.",
    rows=(
        Row(
            "Requests, errors, duration",
            (
                Panel(
                    "Request rate by handler",
                    "Requests per second by route template (probes and /metrics excluded).",
                    "reqps",
                    (Query(f"sum by (handler) ({rate('http_requests_total')})", "{{handler}}"),),
                ),
                Panel(
                    "Request rate by status class",
                    "Requests per second by status class (2xx, 4xx, 5xx); 429s are in 4xx.",
                    "reqps",
                    (Query(f"sum by (status) ({rate('http_requests_total')})", "{{status}}"),),
                ),
                Panel(
                    "Error ratio (5xx)",
                    "Share of requests answered with a 5xx; 0 when there were none.",
                    "percentunit",
                    (
                        Query(
                            f"({sum_rate('http_requests_total', selector=sel(status='5xx'))}"
                            " or vector(0))"
                            f" / ({sum_rate('http_requests_total')} > 0)",
                            "5xx ratio",
                        ),
                    ),
                    max=1,
                ),
                Panel(
                    "Latency p50 / p95 / p99",
                    "Quantiles from the high-resolution histogram (all handlers); exemplars link "
                    "sampled requests to their traces.",
                    "s",
                    tuple(
                        Query(
                            quantile(q, "http_request_duration_highr_seconds"), f"p{int(q * 100)}"
                        )
                        for q in (0.5, 0.95, 0.99)
                    ),
                    exemplars=True,
                ),
                Panel(
                    "Mean latency by handler",
                    "Average duration per route template (sum / count of its histogram).",
                    "s",
                    (
                        Query(
                            per(
                                sum_rate("http_request_duration_seconds_sum", "handler"),
                                sum_rate("http_request_duration_seconds_count", "handler"),
                            ),
                            "{{handler}}",
                        ),
                    ),
                    exemplars=True,
                ),
                Panel(
                    "Requests slower than 500 ms by handler",
                    "Share of each handler's requests above the 0.5 s bucket (a latency SLI).",
                    "percentunit",
                    (
                        Query(
                            "1 - "
                            + sum_rate(
                                "http_request_duration_seconds_bucket", "handler", sel(le="0.5")
                            )
                            + f" / ({COUNT_BY_HANDLER} > 0)",
                            "{{handler}}",
                        ),
                    ),
                    max=1,
                ),
                Panel(
                    "Response throughput by handler",
                    "Response body bytes per second by route template.",
                    "Bps",
                    (
                        Query(
                            f"sum by (handler) ({rate('http_response_size_bytes_sum')})",
                            "{{handler}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Utilisation and saturation",
            (
                Panel(
                    "Requests in flight by pod",
                    "Requests being handled right now (all workers of the pod).",
                    "short",
                    (Query(f"sum by (pod) (http_requests_inprogress{{{POD_SEL}}})", "{{pod}}"),),
                ),
                Panel(
                    "DB pool utilisation by pod",
                    "Checked-out connections over the pools' capacity (size + overflow); near 1 "
                    "means requests queue for a connection.",
                    "percentunit",
                    (
                        Query(
                            "sum by (pod) (floodgate_db_pool_connections"
                            f'{{{POD_SEL}, state="in_use"}})'
                            f" / ({POOL_CAPACITY} > 0)",
                            "{{pod}}",
                        ),
                    ),
                    max=1,
                ),
                Panel(
                    "DB connections by state",
                    "Open connections of all pools: in use by a request, or idle in the pool.",
                    "short",
                    (
                        Query(
                            f"sum by (state) (floodgate_db_pool_connections{{{POD_SEL}}})",
                            "{{state}}",
                        ),
                    ),
                ),
                Panel(
                    "Process CPU by pod",
                    "CPU seconds per second (cores) of the gunicorn arbiter and its workers.",
                    "short",
                    (
                        Query(
                            f"sum by (pod) ({rate('process_cpu_seconds_total', POD_SEL)})",
                            "{{pod}}",
                        ),
                    ),
                ),
                Panel(
                    "Process memory by pod",
                    "Resident memory of the arbiter and its workers (shared pages counted per "
                    "process).",
                    "bytes",
                    (
                        Query(
                            f"sum by (pod) (process_resident_memory_bytes{{{POD_SEL}}})",
                            "{{pod}}",
                        ),
                    ),
                ),
                Panel(
                    "Container CPU (app + Redis sidecar)",
                    f"CPU cores used per container. {K8S_ONLY}",
                    "short",
                    (
                        Query(
                            "sum by (pod, container) "
                            f"({rate('container_cpu_usage_seconds_total', CONTAINER_SEL)})",
                            "{{pod}}/{{container}}",
                        ),
                    ),
                    kubernetes_only=True,
                ),
                Panel(
                    "Container memory (app + Redis sidecar)",
                    f"Working-set memory per container (what the OOM killer looks at). {K8S_ONLY}",
                    "bytes",
                    (
                        Query(
                            "sum by (pod, container) "
                            f"(container_memory_working_set_bytes{{{CONTAINER_SEL}}})",
                            "{{pod}}/{{container}}",
                        ),
                    ),
                    kubernetes_only=True,
                ),
                Panel(
                    "CPU throttling",
                    f"Share of CFS periods in which the container was throttled. {K8S_ONLY}",
                    "percentunit",
                    (
                        Query(
                            "sum by (pod, container) "
                            f"({rate('container_cpu_cfs_throttled_periods_total', CONTAINER_SEL)})"
                            " / (sum by (pod, container) "
                            f"({rate('container_cpu_cfs_periods_total', CONTAINER_SEL)}) > 0)",
                            "{{pod}}/{{container}}",
                        ),
                    ),
                    kubernetes_only=True,
                    max=1,
                ),
            ),
        ),
    ),
)

DECISIONS = "floodgate_ratelimit_decisions_total"
RATELIMIT = Dashboard(
    uid="floodgate-ratelimit",
    title="Floodgate / Rate limits",
    description="Decisions per policy and rule, shadow denies, backend health, policy rollout.",
    rows=(
        Row(
            "Decisions",
            (
                Panel(
                    "Decisions by policy",
                    "Rate-limit decisions per second: allow, deny (429) and shadow_deny.",
                    "reqps",
                    (
                        Query(
                            f"sum by (policy, decision) ({rate(DECISIONS)})",
                            "{{policy}} {{decision}}",
                        ),
                    ),
                ),
                Panel(
                    "Deny ratio by rule",
                    "Share of a rule's decisions that rejected the request (Enforce mode).",
                    "percentunit",
                    (
                        Query(
                            sum_rate(DECISIONS, "policy, rule", sel(decision="deny"))
                            + f" / ({sum_rate(DECISIONS, 'policy, rule')} > 0)",
                            "{{policy}}/{{rule}}",
                        ),
                    ),
                    max=1,
                ),
                Panel(
                    "Shadow denies by rule",
                    "Requests a Shadow-mode rule would have rejected (served anyway): what "
                    "switching it to Enforce would do.",
                    "reqps",
                    (
                        Query(
                            sum_rate(DECISIONS, "policy, rule", sel(decision="shadow_deny")),
                            "{{policy}}/{{rule}}",
                        ),
                    ),
                ),
                Panel(
                    "Allowed requests by rule",
                    "Requests each rule let through per second.",
                    "reqps",
                    (
                        Query(
                            sum_rate(DECISIONS, "policy, rule", sel(decision="allow")),
                            "{{policy}}/{{rule}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Backend and rollout",
            (
                Panel(
                    "Counter store errors by pod",
                    "Requests whose limits could not be checked (store down or circuit open); "
                    "failureMode decides whether they were served.",
                    "reqps",
                    (
                        Query(
                            "sum by (pod) "
                            f"({rate('floodgate_ratelimit_backend_errors_total', POD_SEL)})",
                            "{{pod}}",
                        ),
                    ),
                ),
                Panel(
                    "Policy generation per pod",
                    "Generation of the policy set each pod applies (lowest of its workers).",
                    "short",
                    (Query(f"min by (pod) (floodgate_policy_generation{{{POD_SEL}}})", "{{pod}}"),),
                ),
                Panel(
                    "Pods behind the newest policy generation",
                    "Pods not yet on the highest generation seen (0 once a rollout converged).",
                    "short",
                    (
                        Query(
                            f"count(min by (pod) (floodgate_policy_generation{{{POD_SEL}}})"
                            f" < scalar(max(floodgate_policy_generation{{{POD_SEL}}})))"
                            " or vector(0)",
                            "pods behind",
                        ),
                    ),
                ),
                Panel(
                    "Counter store latency (p50 / p99)",
                    "Round trips to the shared Redis holding the counters, seen by the client.",
                    "s",
                    tuple(
                        Query(
                            quantile(
                                q,
                                "floodgate_redis_command_duration_seconds",
                                sel(role="shared"),
                            ),
                            f"p{int(q * 100)}",
                        )
                        for q in (0.5, 0.99)
                    ),
                    exemplars=True,
                ),
            ),
        ),
    ),
)

LOOKUPS = "floodgate_cache_lookups_total"
FILLS = "floodgate_cache_fills_total"
CACHE = Dashboard(
    uid="floodgate-cache",
    title="Floodgate / Cache",
    description="Hit ratio per tier (L1 in-process, L2 Redis sidecar), fills, errors, latency.",
    rows=(
        Row(
            "Effectiveness",
            (
                Panel(
                    "Hit ratio by tier",
                    "Hits over lookups per tier (l1 = in-process, l2 = Redis sidecar).",
                    "percentunit",
                    (
                        Query(
                            sum_rate(LOOKUPS, "tier", sel(result="hit"))
                            + f" / ({sum_rate(LOOKUPS, 'tier')} > 0)",
                            "{{tier}}",
                        ),
                    ),
                    max=1,
                ),
                Panel(
                    "Lookups by tier and result",
                    "Cache lookups per second.",
                    "reqps",
                    (Query(f"sum by (tier, result) ({rate(LOOKUPS)})", "{{tier}} {{result}}"),),
                ),
                Panel(
                    "Fills by outcome",
                    "Misses per second by how they were answered: loaded by this caller, "
                    "coalesced onto another caller's load, or the loader failed.",
                    "reqps",
                    (Query(f"sum by (outcome) ({rate(FILLS)})", "{{outcome}}"),),
                ),
                Panel(
                    "Coalesced share of fills",
                    "Misses that waited for someone else's load instead of hitting the database.",
                    "percentunit",
                    (
                        Query(
                            sum_rate(FILLS, selector=sel(outcome="coalesced"))
                            + f" / ({sum_rate(FILLS)} > 0)",
                            "coalesced",
                        ),
                    ),
                    max=1,
                ),
            ),
        ),
        Row(
            "Backend",
            (
                Panel(
                    "Backend errors",
                    "Failed or skipped (circuit open) calls to the sidecar or the invalidation "
                    "bus; requests were served without them.",
                    "reqps",
                    (
                        Query(
                            f"sum by (backend) ({rate('floodgate_cache_backend_errors_total')})",
                            "{{backend}}",
                        ),
                    ),
                ),
                Panel(
                    "Invalidations by origin",
                    "Entries invalidated per second: local writes, or messages from other pods.",
                    "reqps",
                    (
                        Query(
                            f"sum by (origin) ({rate('floodgate_cache_invalidations_total')})",
                            "{{origin}}",
                        ),
                    ),
                ),
                Panel(
                    "Sidecar Redis latency (p50 / p99)",
                    "Round trips to the pod's Redis sidecar (L2), as the client sees them.",
                    "s",
                    tuple(
                        Query(
                            quantile(
                                q,
                                "floodgate_redis_command_duration_seconds",
                                sel(role="sidecar"),
                            ),
                            f"p{int(q * 100)}",
                        )
                        for q in (0.5, 0.99)
                    ),
                    exemplars=True,
                ),
                Panel(
                    "Sidecar Redis commands",
                    "Commands (and pipelines) per second sent to the sidecar, by command.",
                    "reqps",
                    (
                        Query(
                            "sum by (command) ("
                            + rate(
                                "floodgate_redis_command_duration_seconds_count",
                                sel(role="sidecar"),
                            )
                            + ")",
                            "{{command}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

HPA_SEL = 'namespace="$namespace", horizontalpodautoscaler="$hpa"'
SCALING = Dashboard(
    uid="floodgate-scaling",
    title="Floodgate / Scaling",
    description="HPA replicas against the load each pod carries.",
    rows=(
        Row(
            "Replicas",
            (
                Panel(
                    "HPA replicas: current, desired, min, max",
                    f"What the autoscaler has, wants, and may use. {K8S_ONLY}",
                    "short",
                    (
                        Query(
                            f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA_SEL}}}",
                            "current",
                        ),
                        Query(
                            f"kube_horizontalpodautoscaler_status_desired_replicas{{{HPA_SEL}}}",
                            "desired",
                        ),
                        Query(
                            f"kube_horizontalpodautoscaler_spec_min_replicas{{{HPA_SEL}}}", "min"
                        ),
                        Query(
                            f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA_SEL}}}", "max"
                        ),
                    ),
                    kubernetes_only=True,
                ),
                Panel(
                    "HPA scaling limited",
                    f"1 while the autoscaler wants more or fewer replicas than allowed. {K8S_ONLY}",
                    "short",
                    (
                        Query(
                            "kube_horizontalpodautoscaler_status_condition"
                            f'{{{HPA_SEL}, condition="ScalingLimited", status="true"}}',
                            "scaling limited",
                        ),
                    ),
                    kubernetes_only=True,
                    max=1,
                ),
                Panel(
                    "Pods serving",
                    "Pods of the service whose /metrics answered the last scrape.",
                    "short",
                    (Query(f"sum(up{{{SEL}}})", "pods up"),),
                ),
            ),
        ),
        Row(
            "Load per pod",
            (
                Panel(
                    "Requests per pod",
                    "Requests per second each pod served: should even out as replicas change.",
                    "reqps",
                    (Query(f"sum by (pod) ({rate('http_requests_total', POD_SEL)})", "{{pod}}"),),
                ),
                Panel(
                    "In-flight requests per pod",
                    "Concurrent requests per pod: the signal to scale on before latency grows.",
                    "short",
                    (Query(f"sum by (pod) (http_requests_inprogress{{{POD_SEL}}})", "{{pod}}"),),
                ),
                Panel(
                    "CPU against request per pod",
                    f"CPU used over CPU requested (what a CPU-based HPA targets). {K8S_ONLY}",
                    "percentunit",
                    (
                        Query(
                            sum_rate("container_cpu_usage_seconds_total", "pod", CONTAINER_SEL)
                            + " / (sum by (pod) (kube_pod_container_resource_requests"
                            f'{{{CONTAINER_SEL}, resource="cpu"}}) > 0)',
                            "{{pod}}",
                        ),
                    ),
                    kubernetes_only=True,
                ),
                Panel(
                    "Latency p99 while scaling",
                    "p99 of all pods, to read next to the replica count.",
                    "s",
                    (Query(quantile(0.99, "http_request_duration_highr_seconds"), "p99"),),
                    exemplars=True,
                ),
            ),
        ),
    ),
    extra_variables=(
        {
            "name": "hpa",
            "label": "HPA",
            "query": "label_values(kube_horizontalpodautoscaler_spec_max_replicas"
            '{namespace="$namespace"}, horizontalpodautoscaler)',
            "multi": False,
            "include_all": False,
        },
    ),
)

DASHBOARDS = (SERVICE, RATELIMIT, CACHE, SCALING)

# --- JSON model --------------------------------------------------------------------------------

VARIABLES: dict[str, dict[str, Any]] = {
    "namespace": {
        "label": "Namespace",
        "query": "label_values(http_requests_total, namespace)",
        "multi": False,
        "include_all": False,
    },
    "service": {
        "label": "Service",
        "query": 'label_values(http_requests_total{namespace="$namespace"}, service)',
        "multi": False,
        "include_all": False,
    },
    "pod": {
        "label": "Pod",
        "query": f"label_values(http_requests_total{{{SEL}}}, pod)",
        "multi": True,
        "include_all": True,
    },
}


def _variable(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name,
        "label": spec["label"],
        "type": "query",
        "datasource": DATASOURCE,
        "definition": spec["query"],
        "query": {"query": spec["query"], "refId": f"{name}-variable"},
        "refresh": 2,
        "sort": 1,
        "multi": spec["multi"],
        "includeAll": spec["include_all"],
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }
    if spec["include_all"]:
        variable["allValue"] = ".+"
    return variable


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for index, query in enumerate(panel.queries):
        targets.append(
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "editorMode": "code",
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
                "instant": False,
                "exemplar": panel.exemplars,
            }
        )
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "min": 0,
        "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
    }
    if panel.max is not None:
        defaults["max"] = panel.max
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    variables = [_datasource_variable()]
    variables += [_variable(name, VARIABLES[name]) for name in dashboard.variables]
    variables += [_variable(v["name"], v) for v in dashboard.extra_variables]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["floodgate"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "links": [
            {
                "type": "dashboards",
                "title": "Floodgate",
                "tags": ["floodgate"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


def build() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{d.uid}.json": json.dumps(render(d), indent=2, ensure_ascii=False) + "\n"
        for d in DASHBOARDS
    }


def main(argv: list[str]) -> int:
    files = build()
    if "--check" in argv:
        stale = [
            name
            for name, text in files.items()
            if not (OUT / name).exists() or (OUT / name).read_text() != text
        ]
        extra = sorted({p.name for p in OUT.glob("*.json")} - files.keys())
        for name in stale:
            print(f"grafana/dashboards/{name} is out of date: run python grafana/generate.py")
        for name in extra:
            print(f"grafana/dashboards/{name} is not generated by grafana/generate.py")
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
