"""The dashboard picture renderer: the dashboard's grid, legends, units and empty panels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from grafana.gen.picture import Series, format_value, legend, render_dashboard

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_legend_fills_labels_like_grafana() -> None:
    assert legend("{{pod}}/{{container}}", {"pod": "api-0", "container": "redis"}) == "api-0/redis"
    assert legend("{{ missing }}", {}) == "value"
    assert legend("p99", {"pod": "x"}) == "p99"


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.25, "percentunit", "25%"),
        (0.0125, "percentunit", "1.25%"),
        (0.0042, "s", "4.2 ms"),
        (2.5, "s", "2.5 s"),
        (3 * 2**20, "bytes", "3 MiB"),
        (512, "Bps", "512 B/s"),
        (12.5, "reqps", "12.5/s"),
        (3, "short", "3"),
    ],
)
def test_units(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_renders_every_panel_and_names_the_empty_ones(tmp_path: Path) -> None:
    dashboard = json.loads((DASHBOARDS / "floodgate-cache.json").read_text())
    asked: list[str] = []

    def query_range(expr: str) -> Sequence[Series]:
        asked.append(expr)
        if "redis" in expr:  # the sidecar panels: nothing came back
            return []
        return [({"tier": "l1", "result": "hit"}, [(1000.0 + i, float(i % 7)) for i in range(60)])]

    png = tmp_path / "cache.png"
    empty = render_dashboard(dashboard, query_range, png, lambda e: e.replace("$namespace", "ns"))
    assert png.read_bytes()[:8] == PNG_MAGIC
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(asked) == sum(len(p["targets"]) for p in panels)
    assert all("$namespace" not in e for e in asked)
    expected = [p["title"] for p in panels if all("redis" in t["expr"] for t in p["targets"])]
    assert expected
    assert empty == expected
