"""The Service dashboard: RED per handler, and USE of processes, the DB pool and the pods."""

from __future__ import annotations

from .model import Dashboard, Panel, Query, Row
from .promql import CONTAINER_SEL, K8S_ONLY, POD_SEL, per, quantile, rate, sel, sum_rate

COUNT_BY_HANDLER = sum_rate("http_request_duration_seconds_count", "handler")
THROTTLED = "container_cpu_cfs_throttled_periods_total"
PERIODS = "container_cpu_cfs_periods_total"
POOL_CAPACITY = f"sum by (pod) (floodgate_db_pool_max_connections{{{POD_SEL}}})"


def dashboard() -> Dashboard:
    return Dashboard(
        uid="floodgate-service",
        title="Floodgate / Service (RED + USE)",
        description=(
            "Requests, errors and latency per handler; saturation of processes, pool, pods."
        ),
        rows=(
            Row(
                "Requests, errors, duration",
                (
                    Panel(
                        "Request rate by handler",
                        "Requests per second by route template (probes and /metrics excluded).",
                        "reqps",
                        (
                            Query(
                                f"sum by (handler) ({rate('http_requests_total')})", "{{handler}}"
                            ),
                        ),
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
                        "Quantiles from the high-resolution histogram (all handlers); exemplars "
                        "link sampled requests to their traces.",
                        "s",
                        tuple(
                            Query(
                                quantile(q, "http_request_duration_highr_seconds"),
                                f"p{int(q * 100)}",
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
                        (
                            Query(
                                f"sum by (pod) (http_requests_inprogress{{{POD_SEL}}})", "{{pod}}"
                            ),
                        ),
                    ),
                    Panel(
                        "DB pool utilisation by pod",
                        "Checked-out connections over the pools' capacity (size + overflow); near "
                        "1 means requests queue for a connection.",
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
                        "Working-set memory per container (what the OOM killer looks at). "
                        f"{K8S_ONLY}",
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
                                per(
                                    sum_rate(THROTTLED, "pod, container", CONTAINER_SEL),
                                    sum_rate(PERIODS, "pod, container", CONTAINER_SEL),
                                ),
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
