"""Turn one run's figures into latest.json, a readable latest.md, and the BENCHMARKS.md section."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MD_START = "<!-- bench:latest:start -->"
MD_END = "<!-- bench:latest:end -->"


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (req/s, latencies); errors summed; RSS the peak of all rounds."""

    def med(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in rounds), 3)

    return {
        "rps": round(med("rps"), 1),
        "rps_min": min(float(r["rps"]) for r in rounds),
        "rps_max": max(float(r["rps"]) for r in rounds),
        "p50_ms": med("p50_ms"),
        "p90_ms": med("p90_ms"),
        "p99_ms": med("p99_ms"),
        "requests": sum(int(r["requests"]) for r in rounds),
        "errors": sum(int(r["errors"]) for r in rounds),
        "non2xx": sum(int(r["non2xx"]) for r in rounds),
        "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in rounds),
    }


def add_ratios(targets: list[dict[str, Any]]) -> None:
    by_key = {t["key"]: t for t in targets if t["status"] == "ok"}
    bare = by_key.get("bare-fastapi", {}).get("median")
    usual = by_key.get("usual-assembly", {}).get("median")
    for t in targets:
        m = t.get("median")
        if not m:
            continue
        t["ratios"] = {
            "vs_bare_fastapi": round(m["rps"] / bare["rps"], 3) if bare else None,
            "vs_usual_assembly": round(m["rps"] / usual["rps"], 2) if usual else None,
            "p99_vs_bare_fastapi": round(m["p99_ms"] / bare["p99_ms"], 2) if bare else None,
        }


@dataclass(frozen=True)
class Goal:
    name: str
    issue: int
    description: str


def check_targets(targets: list[dict[str, Any]], stampede: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues' performance targets, each met / missed / n/a with the figure behind it."""
    ok = {t["key"]: t["median"] for t in targets if t["status"] == "ok"}
    status = {t["key"]: (t["status"], t["reason"]) for t in targets}
    out: list[dict[str, Any]] = []
    last: list[str] = []  # the keys the latest ratio() looked at, for the n/a explanation

    def ratio(a: str, b: str, field: str = "rps") -> float | None:
        last[:] = [a, b]
        if a in ok and b in ok and ok[b][field]:
            return float(ok[a][field]) / float(ok[b][field])
        return None

    def why() -> str:
        for key in last:
            if key not in status:
                return f"n/a ({key} not run in this mode)"
            if status[key][0] != "ok":
                return f"n/a ({key}: {status[key][0]} {status[key][1]})".replace(" )", ")")
        return "n/a"

    def add(issue: int, goal: str, value: float | None, met: bool | None, shown: str) -> None:
        out.append(
            {
                "issue": issue,
                "goal": goal,
                "value": None if value is None else round(value, 3),
                "shown": shown if value is not None else why(),
                "met": met,
            }
        )

    def at_least(issue: int, goal: str, a: str, b: str, k: float, fmt: str = "{:.0%}") -> None:
        v = ratio(a, b)
        add(issue, goal, v, None if v is None else v >= k, fmt.format(v) if v is not None else "")

    at_least(8, "full production path ≥ 50 % of bare FastAPI req/s", "fg-full", "bare-fastapi", 0.5)
    at_least(8, "full production path ≥ 5x the usual assembly", "fg-full", "usual-assembly", 5,
             "{:.2f}x")  # fmt: skip
    v = ratio("fg-full", "bare-fastapi", "p99_ms")
    add(8, "full production path p99 ≤ 2x bare FastAPI's", v, None if v is None else v <= 2,
        f"{v:.2f}x" if v is not None else "")  # fmt: skip
    at_least(8, "uncached PostgreSQL read ≥ 2x the SQLModel tutorial pattern", "fg-pg-read",
             "sqlmodel-tutorial", 2, "{:.2f}x")  # fmt: skip
    v = ratio("fg-keyset-1", "fg-keyset-deep")
    shown = f"page 1 / deep = {v:.2f}" if v is not None else ""
    add(8, "keyset page at depth within 1.2x of page 1 (req/s)", v,
        None if v is None else v <= 1.2, shown)  # fmt: skip
    q = stampede.get("max_queries")
    last[:] = []
    add(8, "stampede (concurrent misses on one cold key) → exactly 1 query",
        None if q is None else float(q), None if q is None else q == 1,
        f"{q} quer{'y' if q == 1 else 'ies'}")  # fmt: skip
    if q is None:
        out[-1]["shown"] = f"n/a ({stampede.get('status')}: {stampede.get('reason', '')})"
    at_least(3, "L1 hit ≥ 70 % of bare FastAPI", "fg-l1-hit", "bare-fastapi", 0.7)
    at_least(3, "L2 (sidecar) hit ≥ 2x fastapi-cache2's hit", "fg-l2-hit", "fastapi-cache2-hit", 2,
             "{:.2f}x")  # fmt: skip
    at_least(4, "rate-limited request ≥ 2x slowapi with Redis", "fg-health-limited",
             "slowapi-redis", 2, "{:.2f}x")  # fmt: skip
    at_least(4, "rate-limited request ≥ 60 % of bare FastAPI", "fg-health-limited",
             "bare-fastapi", 0.6)  # fmt: skip
    at_least(6, "our telemetry (metrics + tracing 1 %) ≥ 75 % of bare FastAPI", "fg-telemetry",
             "bare-fastapi", 0.75)  # fmt: skip
    return out


# --------------------------------------------------------------------------- markdown


def _fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    mach = result["machine"]
    lines: list[str] = []
    label = "QUICK (smoke) run" if s["mode"] == "quick" else "Full run"
    lines.append(f"## {label} — {result['started_at']}")
    lines.append("")
    if result.get("noisy"):
        lines.append(
            f"> **Noisy figures**: load average was {mach['loadavg_start'][0]:.2f} at the start "
            "(other work on the machine); treat ratios as indicative only."
        )
        lines.append("")
    lines.append(
        f"{mach['cpu_model']}, {mach['cores']} cores, kernel {mach['kernel']}, "
        f"Python {mach['python']}. Each server: one uvicorn worker pinned to core "
        f"{s['server_core']}; wrk pinned to core {s['load_core']} (`-t1 -c{s['connections']}`, "
        f"{s['duration_s']} s x {s['rounds']} rounds interleaved, {s['warmup_s']} s warm-up); "
        f"Redis/PostgreSQL on core {s['load_core']}. Medians over rounds; "
        f"{s['rows']:,} seeded messages. Git {result['git']}."
    )
    lines.append("")
    lines.append(
        "| scenario | req/s | rounds min\u2013max | vs bare FastAPI | vs usual assembly | p50 ms "
        "| p99 ms | errors / non-2xx | peak RSS MB | wired |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for group in ("anchors", "hot path", "database", "pages"):
        for t in result["targets"]:
            if t["group"] != group:
                continue
            name = t["label"]
            if t["status"] != "ok":
                lines.append(f"| {name} | {t['status']} ({t['reason']}) | | | | | | | | |")
                continue
            m, r = t["median"], t.get("ratios", {})
            vb = f"{r['vs_bare_fastapi']:.0%}" if r.get("vs_bare_fastapi") is not None else ""
            vu = f"{r['vs_usual_assembly']:.2f}x" if r.get("vs_usual_assembly") is not None else ""
            wired = ", ".join(t.get("features", [])) if t["kind"] == "floodgate" else ""
            lines.append(
                f"| {name} | {_fmt_rps(m['rps'])} | {_fmt_rps(m['rps_min'])}\u2013"
                f"{_fmt_rps(m['rps_max'])} | {vb} | {vu} | {m['p50_ms']:.2f} | "
                f"{m['p99_ms']:.2f} | {m['errors']} / {m['non2xx']} | {m['peak_rss_mb']:.0f} | "
                f"{wired} |"
            )
    lines.append("")
    st = result["stampede"]
    lines.append("### Stampede")
    lines.append("")
    if st.get("status") == "ok":
        for r in st["rounds"]:
            lines.append(
                f"- {r['requests']} concurrent GETs of cold message {r['message_id']} on "
                f"{st['workers']} worker processes → **{r['queries']} database "
                f"quer{'y' if r['queries'] == 1 else 'ies'}** (pg_stat_statements); statuses "
                f"{r['statuses']}; {r['seconds']:.2f} s"
            )
    else:
        lines.append(f"- {st.get('status')}: {st.get('reason', '')}")
    lines.append("")
    lines.append("### Targets")
    lines.append("")
    lines.append("| issue | target | measured | verdict |")
    lines.append("|---:|---|---:|---|")
    for g in result["checks"]:
        lines.append(f"| #{g['issue']} | {g['goal']} | {g['shown']} | {_mark(g['met'])} |")
    lines.append("")
    profiled = [t for t in result["targets"] if t.get("profile", {}).get("samples")]
    if profiled:
        lines.append("### Profiles (py-spy, unmeasured extra run, CPU samples only)")
        lines.append("")
        for t in profiled:
            p = t["profile"]
            lines.append(f"**{t['label']}** — {p['samples']} samples, raw stacks in `{p['file']}`")
            lines.append("")
            lines.append("| self time by package | share | self time by function | share |")
            lines.append("|---|---:|---|---:|")
            for (pkg, ps), (fn, fs) in zip(p["packages"][:10], p["self"][:10], strict=False):
                lines.append(f"| {pkg} | {ps:.1%} | `{fn}` | {fs:.1%} |")
            lines.append("")
    notes = [t for t in result["targets"] if t.get("description") or t.get("notes")]
    if notes:
        lines.append("### Notes")
        lines.append("")
        for t in notes:
            bits = [t["description"]] if t.get("description") else []
            bits += t.get("notes", [])
            lines.append(f"- **{t['label']}** (`{t['load']}`): " + "; ".join(bits))
        lines.append("")
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], outdir: Path, name: str) -> tuple[Path, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    jpath = outdir / f"{name}.json"
    mpath = outdir / f"{name}.md"
    jpath.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    md = markdown(result)
    png = result.get("plot")
    if png:
        md += f"\n![requests per second]({png})\n"
    mpath.write_text("# Floodgate benchmark results\n\n" + md)
    return jpath, mpath


def update_benchmarks_md(path: Path, result: dict[str, Any], png_rel: str | None) -> bool:
    """Replace the section between the markers in BENCHMARKS.md with this run's tables."""
    if not path.exists():
        return False
    text = path.read_text()
    if MD_START not in text or MD_END not in text:
        return False
    head, rest = text.split(MD_START, 1)
    _, tail = rest.split(MD_END, 1)
    body = markdown(result).replace("\n### ", "\n#### ").replace("## ", "### ", 1)
    if png_rel:
        body += f"\n![requests per second]({png_rel})\n"
    path.write_text(f"{head}{MD_START}\n{body}\n{MD_END}{tail}")
    return True
