"""`floodgate serve --workers 2` as a real process: exact counts across workers, a killed worker's
counts survive, exemplars in the OpenMetrics exposition, process metrics for every process."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.telemetry.conftest import (
    children,
    eventually,
    migrated_sqlite,
    sample_sum,
    scrape,
)
from tests.support.server import ServerProcess, start_server

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = migrated_sqlite(tmp_path)
    env["FLOODGATE_METRICS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
    env["OTEL_TRACES_SAMPLER_ARG"] = "0"  # only requests that arrive with a sampled parent
    proc = start_server(env, tmp_path, workers=2)
    yield proc
    proc.terminate()


def _requests(url: str, count: int, *, sampled_every: int = 0) -> None:
    # A fresh connection per request: the kernel spreads them over both workers' accepts.
    for i in range(count):
        headers = {}
        if sampled_every and i % sampled_every == 0:
            headers["traceparent"] = f"00-{TRACE_ID}-{i + 1:016x}-01"
        response = httpx.get(f"{url}/api/v1/users", params={"page": 1}, headers=headers)
        assert response.status_code == 200


def _total(url: str) -> float:
    return sample_sum(scrape(url), "http_requests_total", handler="/api/v1/users")


def _served_by(path: Path) -> set[int]:
    return {int(f.name.split("_")[1].split(".")[0]) for f in path.glob("counter_[0-9]*.db")}


def test_counts_are_exact_across_workers_and_survive_a_killed_worker(
    server: ServerProcess, tmp_path: Path
) -> None:
    workers = eventually(
        lambda: kids if len(kids := children(server.proc.pid)) == 2 else None, what="2 workers"
    )
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Concurrent connections until both workers have served some (bounded): N is then
        # spread over workers, and must come out exact.
        while sent < 1000 and _served_by(tmp_path / "metrics") != set(workers):
            list(pool.map(lambda _: _requests(server.url, 1), range(50)))
            sent += 50
    assert _served_by(tmp_path / "metrics") == set(workers), "both workers served requests"
    assert _total(server.url) == sent

    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    eventually(
        lambda: (kids := children(server.proc.pid)) and victim not in kids and len(kids) == 2,
        what="the arbiter to replace the killed worker",
    )
    eventually(lambda: (tmp_path / "metrics" / "counter_archive.db").exists(), what="archive")
    assert _total(server.url) == sent, "the killed worker's counts are kept"
    _requests(server.url, 50)
    assert _total(server.url) == sent + 50
    # Exposition is the same whichever worker answers.
    assert {_total(server.url) for _ in range(6)} == {sent + 50}


def test_openmetrics_exemplars_and_process_metrics(server: ServerProcess) -> None:
    _requests(server.url, 20, sampled_every=5)

    def with_our_exemplar() -> str | None:
        text = scrape(server.url, openmetrics=True)
        return text if TRACE_ID in text else None

    text = eventually(with_our_exemplar, what="an exemplar with our trace id")
    exemplars = re.findall(r'^(\S+_bucket)\{.*\} \S+ # \{trace_id="([0-9a-f]{32})"\}', text, re.M)
    assert {name for name, _ in exemplars} == {
        "http_request_duration_highr_seconds_bucket",
        "http_request_duration_seconds_bucket",
    }
    assert {trace for _, trace in exemplars} == {TRACE_ID}
    assert text.rstrip().endswith("# EOF")
    plain = scrape(server.url)
    assert "# {" not in plain, "no exemplars in the Prometheus text format"
    pids = set(re.findall(r'^process_cpu_seconds_total\{pid="(\d+)"\}', plain, re.M))
    assert pids == {str(server.proc.pid), *map(str, children(server.proc.pid))}
    assert sample_sum(plain, "http_requests_inprogress") == 0
    assert 'handler="/healthz"' not in plain
    assert 'handler="/metrics"' not in plain
    assert sample_sum(plain, "floodgate_db_pool_max_connections") > 0
