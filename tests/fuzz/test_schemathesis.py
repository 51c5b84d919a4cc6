"""Property-based API tests: schemathesis against a real `floodgate serve`, all checks, no failures.

Once on SQLite with in-memory cache and limits, once on PostgreSQL + Redis with a rate-limit policy
loaded (so documented 429s are served and checked too). Generation is deterministic (a fixed
derandomised seed), bounded by `--max-examples`, and the stateful phase follows the document's
links (POST's `id` → GET/PATCH/DELETE). The request count comes from the run's HAR report.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from tests.support.server import REPO, ServerProcess, start_server
from tests.support.services import PostgresServer, RedisServer

HERE = Path(__file__).parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Per operation and phase; about 15 s of requests per backend on a 2-core machine.
MAX_EXAMPLES = 25
RUN_TIMEOUT_S = 240


def _policy(tmp_path: Path) -> Path:
    # A fresh name per run: counters left in the shared Redis by earlier runs stay apart. Tight
    # enough that the run is denied on some requests (the 429 and its headers get checked),
    # loose enough that every operation is still reached.
    name = f"fuzz-{uuid.uuid4().hex[:8]}"
    policy = tmp_path / f"{name}.yaml"
    policy.write_text(
        f"""
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {{name: {name}}}
spec:
  mode: Enforce
  failureMode: Open
  rules:
    - name: message-reads
      match:
        methods: [GET]
        path: {{type: PathPrefix, value: /api/v1/messages}}
      key: ClientIP
      limit: {{requests: 100, period: 1m}}
      burst: 20
    - name: user-writes
      match:
        methods: [POST, PATCH, DELETE]
        path: {{type: PathPrefix, value: /api/v1/users}}
      key: ClientIP
      limit: {{requests: 200, period: 1m}}
"""
    )
    return policy


def _run_schemathesis(server: ServerProcess, tmp_path: Path) -> tuple[int, dict[int, int]]:
    """Run every phase and check; returns (requests made, responses by status)."""
    har = tmp_path / "schemathesis.har"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{server.url}/openapi.json",
        # Every check is on through the config file ([checks] enabled = true): `--checks all`
        # would also override its two documented per-operation exceptions.
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert result.returncode == 0, output[-20_000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses: dict[int, int] = {}
    for entry in entries:
        status = entry["response"]["status"]
        statuses[status] = statuses.get(status, 0) + 1
    print(f"\nschemathesis: {len(entries)} requests, statuses {dict(sorted(statuses.items()))}")
    assert not any(status >= 500 for status in statuses), (statuses, output[-5_000:])
    return len(entries), statuses


def test_schemathesis_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url, MIGRATIONS_DIR)
    server = start_server(
        {"FLOODGATE_DATABASE_URL": url, "FLOODGATE_GC_FREEZE": "false"}, tmp_path, timeout=120
    )
    try:
        requests, statuses = _run_schemathesis(server, tmp_path)
    finally:
        server.terminate()
    assert requests > 500
    assert statuses.get(201, 0) > 0  # the stateful links had resources to follow


async def _empty_tables(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE messages, users RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.mark.postgres
@pytest.mark.redis
def test_schemathesis_postgres_redis_with_policy(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    upgrade(postgres_server.url, MIGRATIONS_DIR)
    asyncio.run(_empty_tables(postgres_server.url))
    server = start_server(
        {
            "FLOODGATE_DATABASE_URL": postgres_server.url,
            "FLOODGATE_CACHE_URL": redis_server.url,
            "FLOODGATE_LIMITS_URL": redis_server.url,
            "FLOODGATE_POLICY_FILE": str(_policy(tmp_path)),
            "FLOODGATE_GC_FREEZE": "false",
        },
        tmp_path,
        timeout=120,
    )
    try:
        requests, statuses = _run_schemathesis(server, tmp_path)
    finally:
        server.terminate()
    assert requests > 500
    assert statuses.get(201, 0) > 0
    assert statuses.get(429, 0) > 0  # the policy denied some, and those answers were checked
