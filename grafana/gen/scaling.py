"""The Scaling dashboard: HPA replicas against the load each pod carries."""

from __future__ import annotations

from .model import Dashboard, Panel, Query, Row
from .promql import CONTAINER_SEL, K8S_ONLY, POD_SEL, SEL, quantile, rate, sum_rate

HPA_SEL = 'namespace="$namespace", horizontalpodautoscaler="$hpa"'


def dashboard() -> Dashboard:
    return Dashboard(
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
                                f"kube_horizontalpodautoscaler_spec_min_replicas{{{HPA_SEL}}}",
                                "min",
                            ),
                            Query(
                                f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA_SEL}}}",
                                "max",
                            ),
                        ),
                        kubernetes_only=True,
                    ),
                    Panel(
                        "HPA scaling limited",
                        "1 while the autoscaler wants more or fewer replicas than allowed. "
                        f"{K8S_ONLY}",
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
                        (
                            Query(
                                f"sum by (pod) ({rate('http_requests_total', POD_SEL)})", "{{pod}}"
                            ),
                        ),
                    ),
                    Panel(
                        "In-flight requests per pod",
                        "Concurrent requests per pod: the signal to scale on before latency grows.",
                        "short",
                        (
                            Query(
                                f"sum by (pod) (http_requests_inprogress{{{POD_SEL}}})", "{{pod}}"
                            ),
                        ),
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
