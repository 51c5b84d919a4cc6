"""Floodgate's Grafana dashboards as Python: one module per dashboard, rendered to JSON by `render`.

`scripts/generate.py` (`make generate`) writes them to grafana/dashboards/*.json and the chart's
copies; `make lint` fails when the committed JSON differs. Plain Python and the dashboard JSON
model: nothing to install, every query visible here. Conventions (checked by
tests/unit/telemetry/test_dashboards.py, and every query evaluated against a real Prometheus by
tests/integration/telemetry/test_dashboards_prometheus.py): a `datasource` variable and no
`__inputs`; `namespace`/`service`/`pod` variables; counters only under
`rate(...[$__rate_interval])`; a unit and a description on every panel; stable uids; the current
schemaVersion; exemplars on latency panels. Series that only exist in Kubernetes (cAdvisor
`container_*`, kube-state-metrics `kube_*`) say so in their description.

Imported by file path (relative imports only), since the repository root is not a package root.
"""

from __future__ import annotations

from . import cache, ratelimit, scaling, service
from .model import Dashboard
from .render import to_json


def dashboards() -> tuple[Dashboard, ...]:
    return (service.dashboard(), ratelimit.dashboard(), cache.dashboard(), scaling.dashboard())


def build() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{d.uid}.json": to_json(d) for d in dashboards()}
