"""Static conventions of the generated Grafana dashboards (their queries run against a real
Prometheus in tests/integration/telemetry/test_dashboards_prometheus.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "grafana" / "dashboards"
COUNTER = re.compile(r"\b([a-z_:][a-z0-9_:]*(?:_total|_count|_sum|_bucket))\b")
RATE_OF = r"\b(?:rate|increase)\({name}\{{[^}}]*\}}\[\$__rate_interval\]\)"
UNITS = {"reqps", "percentunit", "s", "short", "bytes", "Bps"}
LATENCY = re.compile(r"latency|p99", re.I)


def load_generator() -> ModuleType:
    package = REPO / "grafana" / "gen"
    spec = importlib.util.spec_from_file_location(
        "grafana_gen", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_committed_json_is_what_the_generator_writes() -> None:
    generated = load_generator().build()
    committed = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert committed == generated, "run: make generate"


def test_four_dashboards_with_stable_uids() -> None:
    uids = [d["uid"] for d in dashboards()]
    assert sorted(uids) == [
        "floodgate-cache",
        "floodgate-ratelimit",
        "floodgate-scaling",
        "floodgate-service",
    ]


@pytest.mark.parametrize("dashboard", dashboards(), ids=lambda d: d["uid"])
def test_conventions(dashboard: dict[str, Any]) -> None:
    text = json.dumps(dashboard)
    assert "__inputs" not in dashboard
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["editable"] is True
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "service", "pod"} <= variables.keys()
    # Every datasource reference is the variable: no hard-coded UIDs anywhere.
    uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {dashboard["uid"]}
    assert uids <= {"${datasource}", "-- Grafana --"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        where = f"{dashboard['uid']}: {panel['title']}"
        assert panel["description"].strip(), where
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, where
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"] == panel["datasource"], where
            for name in set(COUNTER.findall(expr)):
                occurrences = len(re.findall(rf"\b{name}\b", expr))
                under_rate = len(re.findall(RATE_OF.format(name=name), expr))
                assert occurrences == under_rate, f"{where}: {name} outside rate()"
            if "[" in expr:
                assert "[$__rate_interval]" in expr, where
            if 'service="$service"' not in expr:
                assert 'namespace="$namespace"' in expr, f"{where}: unscoped query"
        if LATENCY.search(panel["title"]):
            assert all(t["exemplar"] for t in panel["targets"]), f"{where}: exemplars off"
            assert panel["fieldConfig"]["defaults"]["unit"] == "s", where
        if re.search(r"\b(container_|kube_)", json.dumps(panel["targets"])):
            assert "Kubernetes only" in panel["description"], where


def test_panels_do_not_overlap() -> None:
    for dashboard in dashboards():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            g = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & taken, f"{dashboard['uid']}: {panel['title']} overlaps"
            assert g["x"] + g["w"] <= 24
            taken |= cells
