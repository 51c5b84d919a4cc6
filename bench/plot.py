"""Bar chart of req/s per scenario with reference lines (run with the bench venv's matplotlib).

.tools/bench-venv/bin/python bench/plot.py bench/results/latest.json bench/results/latest.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"anchor": "#9aa5b1", "floodgate": "#1f6feb"}


def plot(result: dict[str, Any], out: Path) -> None:
    targets = list(result["targets"])
    labels = [t["label"] for t in targets]
    values = [t["median"]["rps"] if t["status"] == "ok" else 0.0 for t in targets]
    colors = [COLORS[t["kind"]] for t in targets]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(targets) + 1.6))
    ys = list(range(len(targets)))[::-1]
    ax.barh(ys, values, color=colors)
    top = max(values or [1.0])
    for y, t, v in zip(ys, targets, values, strict=True):
        text = f"{v:,.0f}" if t["status"] == "ok" else t["status"]
        ax.text(v + top * 0.01, y, text, va="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    refs = {t["key"]: t for t in targets if t["status"] == "ok"}
    for key, style in (("bare-fastapi", "--"), ("usual-assembly", ":")):
        if key in refs:
            v = refs[key]["median"]["rps"]
            ax.axvline(v, color="#d1242f", linestyle=style, linewidth=1)
            ax.text(v, len(targets) - 0.4, f" {refs[key]['label'].split(' (')[0]}", color="#d1242f",
                    fontsize=7, rotation=0, va="bottom")  # fmt: skip
    s = result["settings"]
    title = f"requests/s, one uvicorn worker on one core, wrk -c{s['connections']} ({s['mode']})"
    if result.get("noisy"):
        title += " — NOISY (machine busy)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("requests per second (median of rounds); grey = reference servers")
    ax.set_xlim(0, top * 1.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    src, out = Path(argv[1]), Path(argv[2])
    plot(json.loads(src.read_text()), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
