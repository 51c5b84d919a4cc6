"""A dashboard drawn to one PNG from queried data: each panel where Grafana would put it.

Not Grafana (no Grafana runs here): a reader of docs/dashboards sees what each panel shows under
load, laid out on the dashboard's own 24-column grid, with its legend and unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

Series = tuple[Mapping[str, str], Sequence[tuple[float, float]]]
QueryRange = Callable[[str], Sequence[Series]]

COLUMNS = 24
INCH_PER_COLUMN = 0.75
INCH_PER_ROW = 0.42  # a Grafana grid row is 30 px against a 60 px-ish column on a wide screen
LEGEND_MAX = 8
_LEGEND_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_dashboard(
    dashboard: Mapping[str, Any],
    query_range: QueryRange,
    png: Path,
    substitute: Callable[[str], str] = lambda text: text,
) -> list[str]:
    """Draws `dashboard` to `png`; returns the titles of the panels that had no data."""
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    fig = Figure(figsize=(COLUMNS * INCH_PER_COLUMN, height * INCH_PER_ROW + 0.8), dpi=72)
    fig.suptitle(dashboard["title"], x=0.01, ha="left", fontsize=16, fontweight="bold")
    top = 1 - 0.8 / (height * INCH_PER_ROW + 0.8)

    def box(pos: Mapping[str, int]) -> tuple[float, float, float, float]:
        # Grid units to figure fractions, with room inside each cell for titles and tick labels.
        x = pos["x"] / COLUMNS + 0.035
        w = pos["w"] / COLUMNS - 0.05
        y = top * (1 - (pos["y"] + pos["h"]) / height) + 0.45 / height
        h = top * pos["h"] / height - 1.5 / height
        return x, y, w, h

    for row in rows:
        y = top * (1 - (row["gridPos"]["y"] + 0.5) / height)
        fig.text(0.01, y, row["title"], fontsize=13, fontweight="bold", va="center")

    empty: list[str] = []
    all_series = [
        (panel, target, query_range(substitute(target["expr"])))
        for panel in panels
        for target in panel.get("targets", [])
    ]
    starts = [pts[0][0] for _, _, result in all_series for _, pts in result if pts]
    t0 = min(starts, default=0.0)
    for panel in panels:
        ax = fig.add_axes(box(panel["gridPos"]))
        drawn = 0
        for p, target, result in all_series:
            if p is not panel:
                continue
            for labels, points in result:
                if not points:
                    continue
                ax.plot(
                    [t - t0 for t, _ in points],
                    [v for _, v in points],
                    label=legend(target.get("legendFormat", ""), labels),
                    linewidth=1.4,
                )
                drawn += 1
        _decorate(ax, panel, drawn)
        if not drawn:
            empty.append(panel["title"])
    fig.savefig(png, format="png")
    return empty


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """Grafana's legendFormat: `{{label}}` replaced by the series' value of that label."""
    return _LEGEND_FIELD.sub(lambda m: labels.get(m.group(1), ""), fmt) or "value"


def _decorate(ax: Axes, panel: Mapping[str, Any], drawn: int) -> None:
    ax.set_title(panel["title"], loc="left", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("seconds", fontsize=8)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(v, unit)))
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="red")
        return
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[:LEGEND_MAX], names[:LEGEND_MAX], fontsize=7, loc="upper left")


def format_value(value: float, unit: str) -> str:
    """A tick label in the panel's Grafana unit."""
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit in ("bytes", "Bps"):
        suffix = "/s" if unit == "Bps" else ""
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}{suffix}"
        return f"{value:.3g} B{suffix}"
    if unit == "reqps":
        return f"{value:.3g}/s"
    return f"{value:.3g}"
