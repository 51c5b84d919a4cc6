"""Label selectors and PromQL builders shared by the dashboards (counters only under `rate`)."""

from __future__ import annotations

RATE = "$__rate_interval"
SEL = 'namespace="$namespace", service="$service"'
POD_SEL = f'{SEL}, pod=~"$pod"'
# cAdvisor labels pods and containers, not services: the pods come from our own metrics ($pod).
CONTAINER_SEL = 'namespace="$namespace", pod=~"$pod", container!="", container!="POD"'
K8S_ONLY = "Kubernetes only: needs cAdvisor (container_*) / kube-state-metrics (kube_*) series."


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
