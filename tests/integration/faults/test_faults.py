"""The fault suite: seven faults, one at a time, under bounded loopback load against a real
`floodgate serve` (PostgreSQL, a cache sidecar Redis, a shared limits Redis with a policy).

For each: no 5xx but the documented 503 + Retry-After, the service recovers by itself within a
bound, and every write it acknowledged (201) is in the database afterwards. Each test prints its
counts (`pytest -s`). Every process stopped here was started here, and is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import yaml

from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from tests.integration.faults.load import CLIENTS, Tally, run_load, wait_for_successes
from tests.support.server import ServerProcess, start_server
from tests.support.services import PostgresServer, RedisServer, start_postgres, start_redis
from tests.unit.ratelimit.builders import policy_doc, rule_doc

pytestmark = pytest.mark.postgres

WARMUP_SUCCESSES = 80  # load before the fault: every pooled connection in use
TAIL_SUCCESSES = 80  # load after the fault ends
MAX_LOAD_S = 15.0  # a bound on each fault's load whatever happens
RECOVERY_BOUND_S = 10.0  # requests succeed again within this, without restarting the service


@dataclass
class Stack:
    """The services one `floodgate serve` needs, all started by this module."""

    postgres: PostgresServer
    sidecar: RedisServer  # the response cache's Redis
    shared: RedisServer  # rate-limit counters and the cache's invalidation bus
    workdir: Path

    def env(self) -> dict[str, str]:
        policy = self.workdir / "policy.yaml"
        if not policy.exists():  # a quota no load here reaches: counters in Redis, no 429s
            rule = rule_doc("generous", limit={"requests": 1_000_000, "period": "10s"})
            policy.write_text(yaml.safe_dump(policy_doc("faults", rule)))
        return {
            "FLOODGATE_DATABASE_URL": self.postgres.url,
            "FLOODGATE_CACHE_URL": self.sidecar.url,
            "FLOODGATE_LIMITS_URL": self.shared.url,
            "FLOODGATE_POLICY_FILE": str(policy),
            "FLOODGATE_DB_POOL_SIZE": "5",
            "FLOODGATE_LOG_LEVEL": "warning",
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    postgres = start_postgres()  # its own: these tests restart and stop it
    sidecar = start_redis()
    shared = start_redis()
    try:
        upgrade(postgres.url, MIGRATIONS_DIR)
        yield Stack(postgres, sidecar, shared, tmp_path_factory.mktemp("faults"))
    finally:
        shared.stop()
        sidecar.stop()
        postgres.stop()


class Target:
    """Where the load goes; the SIGTERM fault replaces the server and points this at the new one."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.started = [server]

    def url(self) -> str:
        return self.server.url

    def replace(self, server: ServerProcess) -> None:
        self.server = server
        self.started.append(server)


@pytest.fixture(scope="module")
def target(stack: Stack) -> Iterator[Target]:
    """One `floodgate serve --workers 2` (gunicorn) for every fault: recovering from one fault
    must not need a restart before the next. Only the SIGTERM fault replaces it."""
    served = Target(start_server(stack.env(), stack.workdir, workers=2))
    yield served
    for running in served.started:
        running.terminate()


async def _recovery_s(url: str) -> float:
    """Seconds until a create, its read and a list page all succeed (at most the bound)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        n = 0
        while time.monotonic() - started < RECOVERY_BOUND_S:
            n += 1
            try:
                body = {"name": "probe", "email": f"probe-{time.time_ns()}-{n}@faults.example.com"}
                created = await client.post("/api/v1/users", json=body)
                if created.status_code == 201:
                    read = await client.get(f"/api/v1/users/{created.json()['id']}")
                    page = await client.get("/api/v1/messages?limit=5")
                    if read.status_code == 200 and page.status_code == 200:
                        return time.monotonic() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"not recovered within {RECOVERY_BOUND_S}s")


async def _lost_writes(postgres: PostgresServer, tally: Tally) -> int:
    """Acknowledged writes the database does not hold as acknowledged."""
    conn = await asyncpg.connect(postgres.dsn())
    try:
        users = await conn.fetch(
            "SELECT id, email FROM users WHERE id = ANY($1::bigint[])", list(tally.users)
        )
        messages = await conn.fetch(
            "SELECT id, body FROM messages WHERE id = ANY($1::bigint[])", list(tally.messages)
        )
    finally:
        await conn.close()
    found_users = {r["id"]: r["email"] for r in users}
    found_messages = {r["id"]: r["body"] for r in messages}
    lost = sum(found_users.get(i) != email for i, email in tally.users.items())
    return int(lost + sum(found_messages.get(i) != text for i, text in tally.messages.items()))


async def _under_load(
    label: str,
    target: Target,
    stack: Stack,
    fault: Callable[[], None],
    *,
    max_seconds: float = MAX_LOAD_S,
) -> tuple[Tally, int]:
    """Load, the fault (in a thread, so the load runs on), more load; then recovery and reads
    back. Returns the tally and the lost writes, after printing both."""
    logged_before = {running.port: len(running.output()) for running in target.started}
    tally, stop = Tally(), asyncio.Event()
    load = asyncio.create_task(run_load(target.url, label, tally, stop, max_seconds=max_seconds))
    await wait_for_successes(tally, WARMUP_SUCCESSES, timeout_s=3.0)
    started = time.monotonic()
    await asyncio.to_thread(fault)
    fault_s = time.monotonic() - started
    await wait_for_successes(tally, TAIL_SUCCESSES, timeout_s=3.0)
    stop.set()
    await load
    recovered = await _recovery_s(target.url())
    lost = await _lost_writes(stack.postgres, tally)
    logged = "".join(
        running.output()[logged_before.get(running.port, 0) :] for running in target.started
    )
    print(
        f"\nFAULT {label}: requests={tally.requests} 2xx={tally.ok} 503={tally.unavailable} "
        f"other_5xx={tally.other_5xx + tally.unavailable_without_retry_after} "
        f"4xx={tally.other} refused={tally.refused} dropped={tally.dropped} "
        f"writes_acknowledged={tally.acknowledged} writes_lost={lost} fault_s={fault_s:.1f} "
        f"recovered_in={recovered:.2f}s tracebacks={logged.count('Traceback')} "
        f"samples={tally.samples}"
    )
    assert "@faults.example.com" not in logged  # no statement parameters in the log
    return tally, lost


def _assert_clean(tally: Tally, lost: int, *, refused: int = 0, dropped: int = 0) -> None:
    assert tally.other_5xx == 0, tally.samples
    assert tally.unavailable_without_retry_after == 0, tally.samples
    assert tally.other == 0, tally.samples
    assert tally.refused <= refused, tally.samples
    assert tally.dropped <= dropped, tally.samples
    assert tally.acknowledged > 0
    assert lost == 0


def _redis_pid(redis: RedisServer) -> int:
    assert redis.proc is not None
    return redis.proc.pid


# --- faults the running server must ride out ---------------------------------------------------


async def test_a_shared_redis_stall(stack: Stack, target: Target) -> None:
    def stall() -> None:
        pid = _redis_pid(stack.shared)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
        finally:
            os.kill(pid, signal.SIGCONT)

    tally, lost = await _under_load("a-stall", target, stack, stall)
    _assert_clean(tally, lost)


async def test_b_cache_sidecar_killed_and_restarted(stack: Stack, target: Target) -> None:
    def kill_and_restart() -> None:
        proc = stack.sidecar.proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stack.sidecar.proc = None
        time.sleep(0.5)
        stack.sidecar.start()  # the same port, empty

    tally, lost = await _under_load("b-sidecar", target, stack, kill_and_restart)
    _assert_clean(tally, lost)


async def test_c_postgres_restarted(stack: Stack, target: Target) -> None:
    tally, lost = await _under_load("c-pg-restart", target, stack, stack.postgres.restart)
    _assert_clean(tally, lost)


async def test_f_shared_redis_restarted(stack: Stack, target: Target) -> None:
    tally, lost = await _under_load("f-shared", target, stack, stack.shared.restart)
    _assert_clean(tally, lost)


async def test_g_postgres_stopped_then_started(stack: Stack, target: Target) -> None:
    def outage() -> None:
        stack.postgres.halt()
        time.sleep(2.0)
        stack.postgres.resume()

    tally, lost = await _under_load("g-pg-outage", target, stack, outage)
    _assert_clean(tally, lost)
    assert tally.unavailable > 0  # the outage was seen, and answered as documented


# --- faults that end a process -----------------------------------------------------------------


def _workers(arbiter_pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(arbiter_pid)], capture_output=True, text=True
    )
    return [int(pid) for pid in out.stdout.split()]


async def test_e_gunicorn_worker_killed(stack: Stack, target: Target) -> None:
    arbiter = target.server.proc.pid
    workers = _workers(arbiter)
    assert len(workers) == 2, workers

    def kill_a_worker() -> None:
        os.kill(workers[0], signal.SIGKILL)  # a child of the arbiter this module started
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the arbiter forks a replacement
            now = _workers(arbiter)
            if len(now) == 2 and workers[0] not in now:
                return
            time.sleep(0.05)
        raise AssertionError("no replacement worker")

    tally, lost = await _under_load("e-worker-kill", target, stack, kill_a_worker)
    # Requests the killed worker was serving end with their connection (at most one per client).
    _assert_clean(tally, lost, dropped=CLIENTS)


async def test_d_sigterm_under_load(stack: Stack, target: Target) -> None:
    codes: list[int] = []
    shutdown_s: list[float] = []

    def sigterm_and_restart() -> None:
        started = time.monotonic()
        codes.append(target.server.terminate())  # SIGTERM, then wait for the graceful exit
        shutdown_s.append(time.monotonic() - started)
        target.replace(start_server(stack.env(), stack.workdir, workers=2))

    # The load outlasts a (slow) start of the replacement, so it is tried under load too.
    tally, lost = await _under_load(
        "d-sigterm", target, stack, sigterm_and_restart, max_seconds=MAX_LOAD_S + 45
    )
    print(f"SIGTERM: exit code {codes[0]} after {shutdown_s[0]:.1f}s")
    assert codes[0] in (0, -signal.SIGTERM)  # a clean, graceful exit
    assert shutdown_s[0] < 15  # the workers finished in time, not killed at graceful_timeout_s
    # While no server listens, connecting is refused. In-flight requests are answered; what
    # may be dropped is a request sent on a keep-alive connection just as the server closed it
    # as idle (HTTP's keep-alive race, which clients retry): at most one per client.
    _assert_clean(tally, lost, refused=tally.requests, dropped=CLIENTS)
