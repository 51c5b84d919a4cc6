"""The targets of one run: reference servers (anchors) and Floodgate scenarios, and the probes that
tell which Floodgate features a server actually has wired (a missing one makes the scenario n/a)."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.infra import BENCH_PY, FLOODGATE, REPO, OtlpSink, Postgres, Redis, row_time
from bench.load import Load, Server

Feature = Literal["cache", "ratelimit", "metrics", "tracing", "l2-only"]
FEATURE_ORDER: tuple[Feature, ...] = ("ratelimit", "cache", "metrics", "tracing")

CURSOR_SECRET = "floodgate-benchmark-cursor-secret-0123456789abcdef"
HOT_ID = 42  # the message every cache-hit scenario reads
PROBE_ID = 7  # read by probes only
WARM_SET = 1000  # ids the L2 scenarios spread over (all cached during the warm-up)
API = "/api/v1/messages/"

# Global rule far above any rate reached here: every request is checked against the shared Redis
# (one GCRA decision each), none is refused.
POLICY_YAML = """\
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: bench-global, namespace: bench}
spec:
  mode: Enforce
  failureMode: Open
  rules:
  - name: global
    match: {path: {type: PathPrefix, value: /api/v1}}
    key: Global
    limit: {requests: 500000, period: 1s}
    burst: 500000
  - name: health
    match: {path: {type: Exact, value: /healthz}}
    key: Global
    limit: {requests: 500000, period: 1s}
    burst: 500000
"""


@dataclass
class Context:
    """Everything the targets' environments point at, created once per run."""

    rows: int
    pg: Postgres
    database: str
    sqlite_path: Path
    redis_cache: Redis
    redis_limits: Redis
    redis_anchor: Redis
    sink: OtlpSink
    policy_file: Path
    base_env: dict[str, str]


@dataclass
class Target:
    key: str
    label: str
    kind: Literal["anchor", "floodgate"]
    group: str
    load: Load
    argv: list[str]
    env: dict[str, str]
    health: str
    quick: bool
    requires: tuple[Feature, ...] = ()
    tracing: bool = False
    connections: int = 64
    description: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- environments


def _tracing_env(ctx: Context, on: bool) -> dict[str, str]:
    if not on:
        return {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"}
    return {
        "OTEL_SERVICE_NAME": "bench",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        "OTEL_EXPORTER_OTLP_ENDPOINT": ctx.sink.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


def _floodgate(
    ctx: Context,
    *,
    db: Literal["pg", "sqlite"] = "pg",
    cache: Literal["memory", "redis"] = "memory",
    limits: bool = False,
    tracing: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = dict(ctx.base_env)
    env.update(
        FLOODGATE_ENVIRONMENT="production",
        FLOODGATE_CURSOR_SECRET=CURSOR_SECRET,
        FLOODGATE_DATABASE_URL=(
            ctx.pg.url(ctx.database) if db == "pg" else f"sqlite+aiosqlite:///{ctx.sqlite_path}"
        ),
        FLOODGATE_CACHE_URL=ctx.redis_cache.url if cache == "redis" else "memory://",
    )
    if limits:
        env["FLOODGATE_LIMITS_URL"] = ctx.redis_limits.url
        env["FLOODGATE_POLICY_FILE"] = str(ctx.policy_file)
    env.update(_tracing_env(ctx, tracing))
    env.update(extra or {})
    return env


def _anchor_env(ctx: Context, **flags: str) -> dict[str, str]:
    env = dict(ctx.base_env)
    env.update(BENCH_SQLITE_PATH=str(ctx.sqlite_path), BENCH_REDIS_URL=ctx.redis_anchor.url)
    env.update(_tracing_env(ctx, flags.get("BENCH_TRACING", "1") == "1"))
    env.update(flags)
    return env


def _uvicorn(module: str) -> list[str]:
    return [
        str(BENCH_PY),
        "-m",
        "uvicorn",
        "--app-dir",
        str(REPO / "bench" / "anchors"),
        f"{module}:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def floodgate_argv(workers: int = 1) -> list[str]:
    argv = [str(FLOODGATE), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    return [*argv, "--workers", str(workers)]


def deep_cursor(rows: int) -> str:
    """A signed keyset cursor positioned `rows - 10` rows deep (the last page of the table)."""
    from floodgate.web.pagination import CursorCodec

    depth = rows - 10
    return CursorCodec(CURSOR_SECRET.encode()).encode(after=(row_time(depth), depth), scope="u=")


# --------------------------------------------------------------------------- the targets


def build_targets(ctx: Context) -> list[Target]:
    n = ctx.rows
    rows_label = f"{n / 1e6:g} M" if n >= 1_000_000 else f"{n // 1000} k"
    usual = {"BENCH_LIMIT": "0", "BENCH_CACHE": "0", "BENCH_METRICS": "0", "BENCH_TRACING": "0"}

    def part(**on: str) -> dict[str, str]:
        return _anchor_env(ctx, **{**usual, **on})

    hot = Load(f"{API}{HOT_ID}")
    post = Load(
        "/api/v1/messages",
        method="POST",
        body='{"user_id": 1, "body": "a new message from the benchmark"}',
        headers={"Content-Type": "application/json"},
    )
    warm_set = Load(API, id_range=(1, WARM_SET))
    return [
        Target("raw-asgi", "raw ASGI hello", "anchor", "anchors", Load("/hello"),
               _uvicorn("raw_asgi"), part(), "/hello", quick=True),
        Target("bare-fastapi", "bare FastAPI hello", "anchor", "anchors", Load("/hello"),
               _uvicorn("bare_fastapi"), part(), "/hello", quick=True),
        Target("sqlmodel-tutorial", "SQLModel tutorial (sync, SQLite, get by id)", "anchor",
               "anchors", Load("/messages/", id_range=(1, n)), _uvicorn("sqlmodel_tutorial"),
               part(), "/messages/1", quick=True,
               description=f"random ids over {rows_label} rows, same SQLite file as Floodgate's"),
        Target("usual-assembly", "usual assembly (slowapi+fastapi-cache2+instrumentator+OTel 1 %)",
               "anchor", "anchors", Load("/items/42"), _uvicorn("usual_assembly"),
               _anchor_env(ctx), "/items/42", quick=True, tracing=True,
               description="cached GET; slowapi and fastapi-cache2 on Redis"),
        Target("fastapi-instrumentator", "FastAPI + instrumentator", "anchor", "anchors",
               Load("/items/42"), _uvicorn("usual_assembly"), part(BENCH_METRICS="1"),
               "/items/42", quick=False),
        Target("fastapi-otel", "FastAPI + OTel instrumentation 1 %", "anchor", "anchors",
               Load("/items/42"), _uvicorn("usual_assembly"), part(BENCH_TRACING="1"),
               "/items/42", quick=False, tracing=True),
        Target("fastapi-instr-otel", "FastAPI + instrumentator + OTel 1 %", "anchor", "anchors",
               Load("/items/42"), _uvicorn("usual_assembly"),
               part(BENCH_METRICS="1", BENCH_TRACING="1"), "/items/42", quick=False,
               tracing=True),
        Target("slowapi-redis", "FastAPI + slowapi (Redis)", "anchor", "anchors",
               Load("/items/42"), _uvicorn("usual_assembly"), part(BENCH_LIMIT="1"),
               "/items/42", quick=False),
        Target("fastapi-cache2-hit", "FastAPI + fastapi-cache2 hit (Redis)", "anchor", "anchors",
               Load("/items/", id_range=(1, WARM_SET)), _uvicorn("usual_assembly"),
               part(BENCH_CACHE="1"), "/items/42", quick=False,
               description=f"random ids over {WARM_SET} warm keys, like the L2 scenario"),
        # ---------------------------------------------------------------- Floodgate
        Target("fg-full", "Floodgate full production path", "floodgate", "hot path", hot,
               floodgate_argv(),
               _floodgate(ctx, cache="redis", limits=True, tracing=True), "/healthz", quick=True,
               requires=("ratelimit", "cache", "metrics", "tracing"), tracing=True,
               description="GET by id on PostgreSQL: global limit in Redis, cache hit (L1 in front "
               "of the Redis sidecar L2), metrics, tracing 1 %"),
        Target("fg-full-gunicorn", "Floodgate full production path, gunicorn 2 workers",
               "floodgate", "hot path", hot, floodgate_argv(workers=2),
               _floodgate(ctx, cache="redis", limits=True, tracing=True), "/healthz",
               quick=False, requires=("ratelimit", "cache", "metrics", "tracing"), tracing=True,
               description="the full production path as a pod with FLOODGATE_WORKERS=2 runs it: "
               "gunicorn, two uvicorn workers sharing core 0, multiprocess metrics (mmap files); "
               "compare with the one-worker full path on the same core"),
        Target("fg-l1-hit", "Floodgate L1 cache hit", "floodgate", "hot path", hot,
               floodgate_argv(), _floodgate(ctx, extra={"FLOODGATE_METRICS_ENABLED": "false"}),
               "/healthz", quick=True, requires=("cache",),
               description="GET by id served in-process (cache memory://): the cache's own cost "
               "- no rate limit, metrics and tracing off"),
        Target("fg-l2-hit", "Floodgate L2 (sidecar) hit", "floodgate", "hot path", warm_set,
               floodgate_argv(),
               _floodgate(ctx, cache="redis", extra={"FLOODGATE_CACHE_L1_MAX_ENTRIES": "0",
                                                     "FLOODGATE_CACHE_DEFAULT_TTL_S": "3600"}),
               "/healthz", quick=False, requires=("cache", "metrics", "l2-only"),
               description=f"L1 switched off: every hit is a Redis GET (random ids over "
               f"{WARM_SET} warm keys, so concurrent requests rarely share one read); metrics on"),
        Target("fg-ratelimited", "Floodgate L1 hit + global limit (Redis)", "floodgate",
               "hot path", hot, floodgate_argv(),
               _floodgate(ctx, limits=True, extra={"FLOODGATE_METRICS_ENABLED": "false"}),
               "/healthz",
               quick=False, requires=("cache", "ratelimit"),
               description="one exact GCRA decision in the shared Redis per request"),
        Target("fg-health", "Floodgate GET /healthz (its own hello)", "floodgate", "hot path",
               Load("/healthz"), floodgate_argv(),
               _floodgate(ctx, extra={"FLOODGATE_METRICS_ENABLED": "false"}), "/healthz",
               quick=False, description="a fixed body through Floodgate's middleware stack; "
               "metrics, tracing and limits off"),
        Target("fg-health-limited", "Floodgate GET /healthz + global limit (Redis)", "floodgate",
               "hot path", Load("/healthz"), floodgate_argv(),
               _floodgate(ctx, limits=True, extra={"FLOODGATE_METRICS_ENABLED": "false"}),
               "/healthz", quick=False, requires=("ratelimit",),
               description="a rate-limited trivial request, the same shape as the slowapi anchor: "
               "one GCRA decision in the shared Redis per request"),
        Target("fg-telemetry", "Floodgate L1 hit + metrics + tracing 1 %", "floodgate",
               "hot path", hot, floodgate_argv(), _floodgate(ctx, tracing=True), "/healthz",
               quick=False, requires=("cache", "metrics", "tracing"), tracing=True,
               description="compare with the L1 cache hit (metrics and tracing off)"),
        Target("fg-pg-read", "Floodgate uncached read, PostgreSQL", "floodgate", "database",
               Load(API, id_range=(1, n)), floodgate_argv(), _floodgate(ctx), "/healthz",
               quick=True, description=f"random ids over {rows_label} rows (cache misses)"),
        Target("fg-sqlite-read", "Floodgate uncached read, SQLite", "floodgate", "database",
               Load(API, id_range=(1, n)), floodgate_argv(), _floodgate(ctx, db="sqlite"),
               "/healthz", quick=True,
               description=f"random ids over {rows_label} rows (cache misses)"),
        Target("fg-post", "Floodgate POST a message", "floodgate", "database", post,
               floodgate_argv(), _floodgate(ctx, cache="redis", limits=True, tracing=True),
               "/healthz", quick=True, tracing=True,
               description="production configuration (whatever of limit/cache/tracing is wired)"),
        Target("fg-post-sqlite", "Floodgate POST a message, SQLite (embedded defaults)",
               "floodgate", "database", post, floodgate_argv(), _floodgate(ctx, db="sqlite"),
               "/healthz", quick=False,
               description="what `make run` serves: SQLite through aiosqlite, in-process cache "
               "and limits; one writer at a time (WAL)"),
        Target("fg-keyset-1", "Floodgate keyset page 1", "floodgate", "pages",
               Load("/api/v1/messages?limit=10"), floodgate_argv(), _floodgate(ctx), "/healthz",
               quick=True),
        Target("fg-keyset-deep", f"Floodgate keyset page at depth {rows_label}", "floodgate",
               "pages", Load(f"/api/v1/messages?limit=10&cursor={deep_cursor(n)}"),
               floodgate_argv(), _floodgate(ctx), "/healthz", quick=True),
        Target("fg-offset-deep", f"Floodgate offset page at depth {rows_label}", "floodgate",
               "pages", Load(f"/api/v1/messages?page={n // 10}&per_page=10"), floodgate_argv(),
               _floodgate(ctx), "/healthz", quick=True, connections=8,
               description="8 connections, not 64: each request scans the whole table, at 64 "
               "hardly any completes within a round"),
    ]  # fmt: skip


def stampede_env(ctx: Context) -> dict[str, str]:
    return _floodgate(ctx, cache="redis", limits=True)


# --------------------------------------------------------------------------- probes


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfaN]+)")


def scrape(server: Server) -> dict[str, float] | None:
    """/metrics as {'name{labels}': value}; None when the server exposes no metrics."""
    try:
        status, _, body = _get(server.url("/metrics"))
    except (urllib.error.URLError, OSError):
        return None
    text = body.decode(errors="replace")
    if status != 200 or "# TYPE" not in text:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def cache_lookups(metrics: dict[str, float]) -> dict[str, float]:
    """{'l1/hit': n, 'l1/miss': n, 'l2/hit': n, ...} from floodgate_cache_lookups_total."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith("floodgate_cache_lookups_total{"):
            tier = re.search(r'tier="([^"]+)"', key)
            result = re.search(r'result="([^"]+)"', key)
            if tier and result:
                name = f"{tier.group(1)}/{result.group(1)}"
                out[name] = out.get(name, 0.0) + value
    return out


def probe(target: Target, server: Server, sink: OtlpSink) -> tuple[set[str], list[str]]:
    """Which features this running server has wired, by observable behaviour only."""
    wired: set[str] = set()
    notes: list[str] = []
    load = target.load
    # Probe the scenario's own path when it is a plain GET, so a feature that skips that route
    # (e.g. a limiter that exempts /healthz) is not counted as wired for it.
    path = load.path if load.method == "GET" and not load.id_range else f"{API}{PROBE_ID}"
    url = server.url(path)
    status, headers, _ = _get(url)
    if status != 200:
        notes.append(f"probe GET {path} -> {status}")
    if "ratelimit-policy" in headers or "ratelimit" in headers:
        wired.add("ratelimit")
    status, headers, _ = _get(url)
    etag = headers.get("etag")
    if etag and _get(url, {"If-None-Match": etag})[0] == 304:
        wired.add("cache")
    metrics = scrape(server)
    if metrics is not None and any(k.startswith("http_request") for k in metrics):
        wired.add("metrics")
    if target.tracing:
        before = sink.count()
        for i in range(3):
            trace_id = f"{int(time.time() * 1e6):016x}{i:016x}"
            _get(url, {"traceparent": f"00-{trace_id}-00000000000000a{i}-01"})
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and sink.count() == before:
            time.sleep(0.1)
        if sink.count() > before:
            wired.add("tracing")
    if "l2-only" in target.requires:
        _check_tiers(target, server, wired, notes)
    return wired, notes


def _check_tiers(target: Target, server: Server, wired: set[str], notes: list[str]) -> None:
    before = scrape(server)
    hot = server.url(f"{API}{HOT_ID}")
    for _ in range(5):
        _get(hot)
    after = scrape(server)
    if before is None or after is None:
        return
    b, a = cache_lookups(before), cache_lookups(after)
    delta = {k: a.get(k, 0.0) - b.get(k, 0.0) for k in a}
    if not delta:
        notes.append("no floodgate_cache_lookups_total series")
        return
    if delta.get("l2/hit", 0) >= 4 and delta.get("l1/hit", 0) == 0:
        wired.add("l2-only")
    elif "l2-only" in target.requires:
        notes.append(f"L1 could not be switched off through settings (lookups: {delta})")
