"""The benchmark runner: `python -m bench.run [--quick]` (what `make bench` runs).

One run starts PostgreSQL, three Redis servers (cache sidecar, shared limits, anchors'), an OTLP
sink, every reference server and every Floodgate scenario's server (one uvicorn worker each, pinned
to core 0), probes which Floodgate features are wired, warms each up, then drives them with wrk
(pinned to core 1) in interleaved rounds (A B C … C B A …) so drift cancels, runs the stampede,
and writes bench/results/<name>.{json,md,png}. Everything is on loopback, bounded in time, and
stopped by pid at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import profiles, report, stampede
from bench.infra import (
    BENCH_PY,
    REPO,
    OtlpSink,
    Postgres,
    count_message_queries,
    ensure_bench_venv,
    log,
    seed_postgres,
    seed_sqlite,
    start_postgres,
    start_redis,
)
from bench.load import LOAD_CORE, SERVER_CORE, Load, Server, run_wrk, start_server, wait_healthy
from bench.scenarios import (
    FEATURE_ORDER,
    HOT_ID,
    POLICY_YAML,
    Context,
    Target,
    build_targets,
    cache_lookups,
    floodgate_argv,
    probe,
    scrape,
    stampede_env,
)

MODES: dict[str, dict[str, int]] = {
    # rounds x duration per target; warm-up once per server, then `rewarm` s before each round
    "quick": {"rounds": 2, "duration": 2, "warmup": 1, "rewarm": 0, "rows": 100_000, "herd": 200},
    "full": {"rounds": 4, "duration": 8, "warmup": 3, "rewarm": 1, "rows": 1_000_000, "herd": 500},
}
_COMMON = ["fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools"]
_COMMON += ["sqlmodel", "sqlalchemy", "redis", "hiredis", "prometheus-fastapi-instrumentator"]
_COMMON += ["opentelemetry-sdk", "opentelemetry-instrumentation-fastapi"]
PROJECT_PACKAGES = ["floodgate", *_COMMON, "asyncpg", "aiosqlite", "orjson", "prometheus-client"]
PROJECT_PACKAGES += ["gunicorn"]
PROFILE_DIR = REPO / "bench" / "results" / "profiles"
ANCHOR_PACKAGES = [*_COMMON, "slowapi", "limits", "fastapi-cache2", "matplotlib"]


# --------------------------------------------------------------------------- machine facts


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def _versions(packages: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def _anchor_versions() -> dict[str, Any]:
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        f"for n in {ANCHOR_PACKAGES!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps({'python': sys.version.split()[0], 'packages': out}))\n"
    )
    done = subprocess.run([str(BENCH_PY), "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_start": list(os.getloadavg()),
        "tools": {
            "wrk": _cmd(["wrk", "-v"]),
            "redis": _cmd(["redis-server", "--version"]),
        },
        "project_packages": _versions(PROJECT_PACKAGES),
    }


def git_describe() -> str:
    rev = _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{rev}{' (+ uncommitted changes)' if dirty else ''}"


# --------------------------------------------------------------------------- orchestration


class Stop(Exception):
    """SIGTERM/SIGINT: unwind so every process we started is stopped."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Stop(f"signal {signum}")


def preflight() -> None:
    missing = [tool for tool in ("wrk", "taskset", "redis-server") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench: missing {', '.join(missing)}: run bench/setup.sh (make bench)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs 2 cores (server on one, load generator on the other)")


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            s.stop()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    mode = dict(MODES["quick" if args.quick else "full"])
    for key in ("rounds", "duration", "rows"):
        if getattr(args, key) is not None:
            mode[key] = getattr(args, key)
    started = time.monotonic()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_describe(),
        "machine": machine_info(),
        "settings": {
            "mode": "quick" if args.quick else "full",
            "rounds": mode["rounds"],
            "duration_s": mode["duration"],
            "warmup_s": mode["warmup"],
            "rewarm_s": mode["rewarm"],
            "connections": 64,
            "wrk_threads": 1,
            "rows": mode["rows"],
            "server_core": int(SERVER_CORE),
            "load_core": int(LOAD_CORE),
            "stampede_requests": mode["herd"],
        },
    }
    result["noisy"] = result["machine"]["loadavg_start"][0] > 0.5
    ensure_bench_venv()
    result["machine"]["anchor_venv"] = _anchor_versions()

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="floodgate-bench-"))
        stack.callback(shutil.rmtree, tmp, True)
        if args.keep_logs:  # runs before the rmtree (LIFO), after every server has stopped
            keep = REPO / "bench" / "results" / "tmp" / f"logs-{args.name or 'run'}"
            stack.callback(shutil.copytree, tmp / "logs", keep, dirs_exist_ok=True)
        (tmp / "logs").mkdir()
        (tmp / "lua").mkdir()
        sink = OtlpSink()
        stack.callback(sink.stop)
        redis_cache = start_redis(tmp, "cache", maxmemory="256mb")
        stack.callback(redis_cache.stop)
        redis_limits = start_redis(tmp, "limits")
        stack.callback(redis_limits.stop)
        redis_anchor = start_redis(tmp, "anchor")
        stack.callback(redis_anchor.stop)
        pg = start_postgres(tmp)
        stack.callback(pg.stop)
        result["machine"]["tools"]["postgres"] = pg.version()

        rows = mode["rows"]
        database = f"bench_{rows}"
        sqlite_path = tmp / f"sqlite-{rows}.db"
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY_YAML)
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLOODGATE_", "OTEL_"))
        }
        ctx = Context(
            rows=rows,
            pg=pg,
            database=database,
            sqlite_path=sqlite_path,
            redis_cache=redis_cache,
            redis_limits=redis_limits,
            redis_anchor=redis_anchor,
            sink=sink,
            policy_file=policy,
            base_env=base_env,
        )
        targets = [t for t in build_targets(ctx) if t.quick or not args.quick]
        overrides = dict(kv.split("=", 1) for kv in args.set)
        result["settings"]["floodgate_env_overrides"] = overrides
        for t in targets:
            if t.kind == "floodgate":
                t.env.update(overrides)
        if args.only:
            wanted = set(args.only.split(","))
            targets = [t for t in targets if t.key in wanted or t.key in ("bare-fastapi",)]
        herd = not args.only or "stampede" in args.only.split(",")
        # Servers boot on core 0 while the databases are seeded on core 1 (nothing connects at
        # import time); health checks and probes wait for the data.
        log(f"starting {len(targets) + herd} servers on core {SERVER_CORE}; seeding on core "
            f"{LOAD_CORE}")  # fmt: skip
        servers = {
            t.key: start_server(t.key, t.argv, env=t.env, cwd=tmp, logdir=tmp / "logs")
            for t in targets
        }
        if herd:
            herd_env = {**stampede_env(ctx), **overrides}
            servers["stampede"] = start_server(
                "stampede", floodgate_argv(workers=2), env=herd_env, cwd=tmp, logdir=tmp / "logs"
            )
        stack.enter_context(running(list(servers.values())))
        seed_all(ctx, tmp)
        profile = frozenset(args.profile.split(",")) if args.profile else frozenset()
        result["targets"] = run_targets(targets, servers, ctx, mode, tmp, profile)
        if herd:
            result["stampede"] = run_stampede(ctx, servers["stampede"], mode, args)
        else:
            result["stampede"] = {"status": "skipped", "reason": "not selected", "rounds": []}
    report.add_ratios(result["targets"])
    result["checks"] = report.check_targets(result["targets"], result["stampede"])
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


def seed_all(ctx: Context, tmp: Path) -> None:
    """Seed PostgreSQL and SQLite at the same time (each is mostly waiting on its database)."""
    t0 = time.monotonic()
    errors: list[BaseException] = []

    def pg() -> None:
        try:
            asyncio.run(seed_postgres(ctx.pg, ctx.database, ctx.rows, tmp))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=pg)
    thread.start()
    try:
        seed_sqlite(ctx.sqlite_path, ctx.rows, tmp)
    finally:
        thread.join()
    if errors:
        raise errors[0]
    log(f"seeded PostgreSQL and SQLite with {ctx.rows:,} messages in "
        f"{time.monotonic() - t0:.1f} s")  # fmt: skip


def _record(t: Target) -> dict[str, Any]:
    return {
        "key": t.key,
        "label": t.label,
        "kind": t.kind,
        "group": t.group,
        "load": t.load.describe(),
        "connections": t.connections,
        "description": t.description,
        "requires": list(t.requires),
        "status": "ok",
        "reason": "",
        "features": [],
        "notes": list(t.notes),
        "rounds": [],
    }


def run_targets(
    targets: list[Target],
    servers: dict[str, Server],
    ctx: Context,
    mode: dict[str, int],
    tmp: Path,
    profile: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    records = {t.key: _record(t) for t in targets}
    live: list[Target] = []
    for t in targets:
        rec, server = records[t.key], servers[t.key]
        try:
            wait_healthy(server, t.health, timeout=90)
        except (RuntimeError, TimeoutError) as exc:
            rec.update(status="failed", reason="server did not start")
            rec["notes"].append(str(exc)[-600:])
            log(f"{t.key}: failed to start\n{exc}")
            continue
        if t.kind == "floodgate":
            wired, notes = probe(t, server, ctx.sink)
            rec["features"] = [f for f in FEATURE_ORDER if f in wired]
            rec["notes"] += notes
            missing = [f for f in t.requires if f not in wired]
            if missing:
                rec.update(status="n/a", reason="not yet wired: " + ", ".join(missing))
                log(f"{t.key}: n/a ({rec['reason']}; wired: {sorted(wired)})")
                server.stop()
                continue
            rec["_metrics_before"] = scrape(server)
        live.append(t)

    for t in live:  # warm-up (discarded): JIT-less Python still fills caches, pools, the L1
        run_wrk(
            servers[t.key],
            t.load,
            duration_s=mode["warmup"],
            scriptdir=tmp / "lua",
            connections=t.connections,
        )
    for rnd in range(mode["rounds"]):
        order = live if rnd % 2 == 0 else live[::-1]
        log(f"round {rnd + 1}/{mode['rounds']}: {len(order)} targets x {mode['duration']} s")
        for t in order:
            server = servers[t.key]
            if not server.alive():
                records[t.key].update(status="failed", reason="server died under load")
                continue
            if mode["rewarm"]:
                run_wrk(server, t.load, duration_s=mode["rewarm"], scriptdir=tmp / "lua",
                        connections=t.connections)  # fmt: skip
            m = run_wrk(server, t.load, duration_s=mode["duration"], scriptdir=tmp / "lua",
                        connections=t.connections)  # fmt: skip
            records[t.key]["rounds"].append(m.as_dict())
            log(f"  {t.key:24s} {m.rps:9,.0f} req/s  p99 {m.p99_ms:6.2f} ms  "
                f"err {m.errors}/{m.non2xx}  rss {m.peak_rss_mb:.0f} MB")  # fmt: skip

    for t in live:
        if t.key in profile and servers[t.key].alive():
            records[t.key]["profile"] = profile_target(t, servers[t.key], mode, tmp)
    for t in live:
        rec = records[t.key]
        before = rec.pop("_metrics_before", None)
        if rec["status"] == "ok" and rec["rounds"]:
            rec["median"] = report.summarise(rec["rounds"])
            if rec["median"]["errors"] + rec["median"]["non2xx"] > 0.01 * rec["median"]["requests"]:
                rec["notes"].append("more than 1 % errors or non-2xx responses")
        after = scrape(servers[t.key]) if t.kind == "floodgate" else None
        if before is not None and after is not None:
            b, a = cache_lookups(before), cache_lookups(after)
            delta = {k: int(a.get(k, 0.0) - b.get(k, 0.0)) for k in sorted(a)}
            if any(delta.values()):
                rec["cache_lookups"] = delta
                rec["notes"].append("cache lookups during the run: " + _lookups_text(delta))
    for rec in records.values():
        rec.pop("_metrics_before", None)
    return [records[t.key] for t in targets]


def profile_target(t: Target, server: Server, mode: dict[str, int], tmp: Path) -> dict[str, Any]:
    """Sample the server with py-spy (on the load core) during an extra, unmeasured load run."""
    raw = PROFILE_DIR / f"profile-{t.key}.txt"
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    seconds = max(mode["duration"], 5)
    spy = subprocess.Popen(
        [str(BENCH_PY.with_name("py-spy")), "record", "--nonblocking", "--format", "raw",
         "--rate", "250", "--duration", str(seconds), "--subprocesses", "--pid",
         str(server.proc.pid), "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.5)
    run_wrk(server, t.load, duration_s=seconds, scriptdir=tmp / "lua", connections=t.connections)
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not raw.exists():
        return {"error": err.decode(errors="replace")[-400:]}
    summary = profiles.summarise(raw.read_text())
    log(f"profile of {t.key}: {raw.relative_to(REPO)}")
    for line in profiles.render(summary, top=12).splitlines():
        log("  " + line)
    return {"file": str(raw.relative_to(REPO)), **summary}


def _lookups_text(delta: dict[str, int]) -> str:
    parts = []
    for tier in ("l1", "l2"):
        hit, miss = delta.get(f"{tier}/hit", 0), delta.get(f"{tier}/miss", 0)
        if hit + miss:
            parts.append(f"{tier.upper()} {hit / (hit + miss):.1%} hits of {hit + miss:,}")
    return ", ".join(parts) or json.dumps(delta)


def run_stampede(
    ctx: Context, server: Server, mode: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    """N concurrent GETs of a never-read message against 2 worker processes sharing the Redis."""
    out: dict[str, Any] = {"workers": 2, "requests": mode["herd"], "rounds": []}
    try:
        wait_healthy(server, "/healthz", timeout=90)
    except (RuntimeError, TimeoutError) as exc:
        return {**out, "status": "failed", "reason": str(exc)[-600:]}
    hot = Load(f"/api/v1/messages/{HOT_ID}")
    target = Target("stampede", "stampede", "floodgate", "database", hot, [], {}, "/healthz",
                    quick=True, requires=("cache",))  # fmt: skip
    wired, _ = probe(target, server, ctx.sink)
    out["features"] = [f for f in FEATURE_ORDER if f in wired]
    for i in range(1 if args.quick else 3):
        message_id = ctx.rows // 2 + 1000 * i + 17  # never read by anything else
        out["rounds"].append(_stampede_round(ctx.pg, ctx.database, server, message_id, mode))
    queries = [r["queries"] for r in out["rounds"]]
    out["max_queries"] = max(queries)
    if "cache" not in wired:
        out["status"] = "n/a"
        out["reason"] = (
            f"not yet wired: cache (without it: {max(queries)} queries for "
            f"{mode['herd']} concurrent requests)"
        )
        out["max_queries"] = None
    else:
        out["status"] = "ok"
    server.stop()
    log(f"stampede: {out['status']}, queries per round {queries}")
    return out


def _stampede_round(
    pg: Postgres, database: str, server: Server, message_id: int, mode: dict[str, int]
) -> dict[str, Any]:
    asyncio.run(count_message_queries(pg, database, reset=True))
    t0 = time.monotonic()
    statuses = asyncio.run(
        stampede.fire(server.port, f"/api/v1/messages/{message_id}", mode["herd"])
    )
    seconds = time.monotonic() - t0
    time.sleep(0.2)
    queries = asyncio.run(count_message_queries(pg, database))
    return {
        "message_id": message_id,
        "requests": mode["herd"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "queries": queries,
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: < 2 minutes, noisy")
    parser.add_argument("--rounds", type=int, help="override the mode's rounds")
    parser.add_argument("--duration", type=int, help="override seconds per measurement")
    parser.add_argument("--rows", type=int, help="override the seeded message count")
    parser.add_argument("--only", help="comma-separated target keys (bare-fastapi always runs)")
    parser.add_argument(
        "--name", help="output basename in bench/results (default: latest, quick: quick)"
    )
    parser.add_argument(
        "--profile", help="comma-separated target keys to sample with py-spy after the rounds"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every Floodgate server (experiments; recorded in the JSON)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="copy server logs to bench/results/tmp/"
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--publish", action="store_true", help="also refresh the table in BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    preflight()
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # helpers inherit core 1; servers get core 0
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        result = measure(args)
    except Stop as exc:
        log(f"stopped ({exc}); every server was shut down")
        return 130
    outdir = REPO / "bench" / "results"
    name = args.name or ("quick" if args.quick else "latest")
    png: str | None = None
    if not args.no_plot:
        outdir.mkdir(parents=True, exist_ok=True)
        tmpjson = outdir / f".{name}.tmp.json"
        tmpjson.write_text(json.dumps(result))
        try:
            subprocess.run(
                [str(BENCH_PY), str(REPO / "bench" / "plot.py"), str(tmpjson),
                 str(outdir / f"{name}.png")],
                check=True,
            )  # fmt: skip
            png = f"{name}.png"
        finally:
            tmpjson.unlink(missing_ok=True)
    result["plot"] = png
    jpath, mpath = report.write_outputs(result, outdir, name)
    if args.publish:
        report.update_benchmarks_md(
            REPO / "BENCHMARKS.md", result, f"bench/results/{png}" if png else None
        )
    log(f"wrote {jpath.relative_to(REPO)}, {mpath.relative_to(REPO)}"
        f"{', bench/results/' + png if png else ''} in {result['elapsed_s']:.0f} s")  # fmt: skip
    print()
    print(report.markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
