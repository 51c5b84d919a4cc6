"""Grafana's dashboard JSON model for a `Dashboard`: variables, row and panel layout, targets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import Dashboard, Panel
from .promql import SEL

SCHEMA_VERSION = 41  # Grafana 12
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The variables a dashboard names in `Dashboard.variables` (its `extra_variables` add more).
VARIABLES: Mapping[str, Mapping[str, Any]] = {
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


def _variable(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
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


def to_json(dashboard: Dashboard) -> str:
    """The dashboard as its committed file holds it (indented, UTF-8, trailing newline)."""
    return json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"
