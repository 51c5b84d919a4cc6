"""Multiprocess bookkeeping with real processes: dead workers fold into archives without changing a
single exposed value; exemplars survive prometheus_client's multiprocess mode; process metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from floodgate.telemetry import multiprocess

# Runs in a fresh interpreter: prometheus_client picks its storage when first imported.
WORKER = """
import sys
from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.metrics import HttpMetrics
store = ExemplarStore(__import__("pathlib").Path(sys.argv[1]))
metrics = HttpMetrics()
for i in range(int(sys.argv[2])):
    metrics.observe("GET", 200, "/items/{item_id}", 0.003 * i, 10, 20, store, f"{i:032x}")
metrics.observe("POST", 503, "/items", 0.7, 5, 0)
store.flush()
print(__import__("os").getpid())
"""


def _worker(path: Path, requests: int) -> int:
    env = {**os.environ, multiprocess.ENV: str(path)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), str(requests)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _exposition(path: Path) -> str:
    script = (
        "import sys; from floodgate.telemetry.exemplars import ExemplarStore;"
        "from floodgate.telemetry.exposition import build_registry, render;"
        "body, _ = render(build_registry(ExemplarStore(__import__('pathlib').Path(sys.argv[1]))),"
        "'application/openmetrics-text; version=1.0.0', '');"
        "sys.stdout.write(body.decode())"
    )
    env = {**os.environ, multiprocess.ENV: str(path)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _series(text: str, prefix: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            key, _, rest = line.partition(" ")
            found[key] = rest.split(" # ")[0]
    return found


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    path, created = multiprocess.prepare_directory(tmp_path / "metrics")
    assert not created
    return path


def test_dead_workers_fold_into_archives_exactly(directory: Path) -> None:
    first = _worker(directory, 5)
    second = _worker(directory, 7)
    before = _exposition(directory)
    assert (
        _series(before, "http_requests_total")[
            'http_requests_total{handler="/items/{item_id}",method="GET",status="2xx"}'
        ]
        == "12.0"
    )
    for pid in (first, second):
        multiprocess.worker_exited(pid, directory)
    after = _exposition(directory)
    assert sorted(p.name for p in directory.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
        "summary_archive.db",
    ]
    for prefix in ("http_requests_total", "http_request_", "http_response_size"):
        assert _series(after, prefix) == _series(before, prefix)
    # A worker that starts afterwards adds to the archived totals.
    _worker(directory, 3)
    again = _series(_exposition(directory), "http_requests_total")
    assert again['http_requests_total{handler="/items",method="POST",status="5xx"}'] == "3.0"


def test_exemplars_in_multiprocess_mode(directory: Path) -> None:
    _worker(directory, 4)
    text = _exposition(directory)
    exemplars = [line for line in text.splitlines() if ' # {trace_id="' in line]
    assert exemplars, text
    assert all(line.split(" # ")[0].split("{")[0].endswith("_bucket") for line in exemplars)
    assert any("http_request_duration_highr_seconds_bucket" in line for line in exemplars)


def test_prepare_empties_a_reused_directory(directory: Path) -> None:
    _worker(directory, 1)
    assert list(directory.glob("*.db"))
    multiprocess.prepare_directory(directory)
    assert not list(directory.glob("*.db"))
    assert not list(directory.glob("exemplars_*"))


def test_process_metrics_for_every_server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(multiprocess, "ARBITER_PID", os.getpid())
        families = {f.name: f for f in multiprocess.ServerProcessCollector().collect()}
        pids = {s.labels["pid"] for s in families["process_cpu_seconds"].samples}
        assert {str(os.getpid()), str(child.pid)} <= pids
        assert "process_resident_memory_bytes" in families
    finally:
        child.kill()
        child.wait()
