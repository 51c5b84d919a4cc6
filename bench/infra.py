"""What the benchmark runs against: the bench venv, Redis, PostgreSQL, seeded data, an OTLP sink.

Every process is started here, on loopback, and stopped by its pid. Helpers (Redis, PostgreSQL,
load generator) inherit the runner's CPU affinity (core 1); only the measured servers go on core 0.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from glob import glob
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_PY = REPO / ".venv" / "bin" / "python"
FLOODGATE = REPO / ".venv" / "bin" / "floodgate"
UV = REPO / ".tools" / "uv" / "bin" / "uv"
BENCH_VENV = REPO / ".tools" / "bench-venv"
BENCH_PY = BENCH_VENV / "bin" / "python"
REQUIREMENTS = REPO / "bench" / "anchors" / "requirements.txt"

# Seeded data: row i has created_at = EPOCH + i seconds, so (created_at, id) order is id order.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SEED_USERS = 1000
BODY_PREFIX = "benchmark message, a sentence of ordinary length about nothing in particular, #"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM by pid, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


# --------------------------------------------------------------------------- bench venv


def ensure_bench_venv() -> Path:
    """Create `.tools/bench-venv` from the pinned requirements (idempotent, keyed by their hash)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = BENCH_VENV / ".requirements-sha"
    if BENCH_PY.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return BENCH_PY
    if not UV.exists():
        raise RuntimeError(f"{UV} missing: run `make venv` first")
    log(f"building the anchor venv {BENCH_VENV.relative_to(REPO)} (pinned requirements)")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [str(UV), "venv", "--quiet", "--clear", "--python", "python3", str(BENCH_VENV)],
        check=True,
        env=env,
    )
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(BENCH_PY), "-r", str(REQUIREMENTS)],
        check=True,
        env=env,
    )
    stamp.write_text(digest + "\n")
    return BENCH_PY


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(base: Path, name: str, maxmemory: str | None = None) -> Redis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run `make services`")
    port = free_port()
    workdir = base / f"redis-{name}"
    workdir.mkdir(parents=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir), "--protected-mode", "no", "--loglevel", "warning"]
    if maxmemory:  # the per-pod sidecar's shape
        argv += ["--maxmemory", maxmemory, "--maxmemory-policy", "allkeys-lru"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return Redis(port=port, workdir=workdir, proc=proc)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> str:
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make services`")
    return found


@dataclass
class Postgres:
    """A throwaway cluster with pg_stat_statements preloaded (the stampede counts queries)."""

    port: int
    datadir: Path
    as_user: list[str] = field(default_factory=list)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def version(self) -> str:
        out = subprocess.run([_pg_bin("postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        pg_ctl = [*self.as_user, _pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w"]
        subprocess.run([*pg_ctl, "stop"], check=False, capture_output=True)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres(base: Path) -> Postgres:
    root = base / "pg"
    root.mkdir()
    os.chmod(base, 0o755)
    os.chmod(root, 0o755)
    datadir = root / "data"
    datadir.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(datadir, user="postgres", group="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [_pg_bin("initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres"]
    subprocess.run([*as_user, *initdb, "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    port = free_port()
    opts = (
        f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
        "-c shared_buffers=512MB -c shared_preload_libraries=pg_stat_statements "
        "-c pg_stat_statements.track=all -c maintenance_work_mem=256MB"
    )
    pg_ctl = [_pg_bin("pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(datadir / "log")]
    subprocess.run([*as_user, *pg_ctl, "-w", "start"], check=True, capture_output=True)
    wait_for_port(port)
    return Postgres(port=port, datadir=datadir, as_user=as_user)


def migrate(database_url: str, workdir: Path) -> None:
    """Create the schema with the project's own migrations (`floodgate migrate`)."""
    env = _clean_env({"FLOODGATE_DATABASE_URL": database_url})
    subprocess.run(
        [str(FLOODGATE), "migrate"], check=True, env=env, cwd=workdir, capture_output=True
    )


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOODGATE_", "OTEL_"))}
    env.update(extra)
    return env


def row_time(i: int) -> datetime:
    return EPOCH + timedelta(seconds=i)


async def seed_postgres(pg: Postgres, database: str, rows: int, workdir: Path) -> None:
    """Create `database`, migrate it, and fill it with `rows` messages in one INSERT … SELECT."""
    import asyncpg  # type: ignore[import-untyped]  # in the project venv

    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    migrate(pg.url(database), workdir)
    conn = await asyncpg.connect(pg.dsn(database))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute(
            "INSERT INTO users (id, name, email, created_at) "
            "SELECT g, 'user ' || g, 'user' || g || '@bench.example', $1::timestamptz "
            "FROM generate_series(1, $2::int) g",
            EPOCH,
            SEED_USERS,
        )
        await conn.execute(
            "INSERT INTO messages (id, body, user_id, created_at, updated_at) "
            "SELECT g, $1::text || g, 1 + g % $2::int, $3::timestamptz + g * interval '1 second', "
            "$3::timestamptz + g * interval '1 second' FROM generate_series(1, $4::int) g",
            BODY_PREFIX,
            SEED_USERS,
            EPOCH,
            rows,
        )
        for table in ("users", "messages"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def seed_sqlite(path: Path, rows: int, workdir: Path) -> None:
    """Migrate a SQLite file and fill it in one transaction (rows generated inside SQLite)."""
    migrate(f"sqlite+aiosqlite:///{path}", workdir)
    epoch = EPOCH.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
    # SQLAlchemy stores SQLite DateTime as naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    ts = "datetime(:epoch, '+' || g || ' seconds') || '.000000'"
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        with db:
            db.execute(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
                "INSERT INTO users (id, name, email, created_at) "
                "SELECT g, 'user ' || g, 'user' || g || '@bench.example', :epoch || '.000000' "
                "FROM s",
                {"n": SEED_USERS, "epoch": epoch},
            )
            db.execute(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
                "INSERT INTO messages (id, body, user_id, created_at, updated_at) "
                f"SELECT g, :body || g, 1 + g % :users, {ts}, {ts} FROM s",
                {"n": rows, "epoch": epoch, "body": BODY_PREFIX, "users": SEED_USERS},
            )
        db.execute("ANALYZE")
    finally:
        db.close()


async def count_message_queries(pg: Postgres, database: str, reset: bool = False) -> int:
    """Statements executed on the messages table (pg_stat_statements: a database-side count)."""
    import asyncpg

    conn = await asyncpg.connect(pg.dsn(database))
    try:
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return 0
        value = await conn.fetchval(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 "
            "AND s.query ILIKE '%messages%' AND s.query NOT ILIKE '%pg_stat_statements%'",
            database,
        )
        return int(value)
    finally:
        await conn.close()


# --------------------------------------------------------------------------- OTLP sink


class OtlpSink:
    """Accepts OTLP/HTTP exports on loopback and counts them (spans are not decoded).

    Both Floodgate and the usual-assembly anchor export to it, so both pay a real exporter's cost
    and neither logs connection errors; a probe tells whether a server exports at all.
    """

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                with sink._lock:
                    sink.exports += 1
                    sink.bytes += length
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        with self._lock:
            return self.exports

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
