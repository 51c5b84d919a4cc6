"""Helpers for telemetry tests against real processes: a migrated SQLite service, scrapes, pids."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from floodgate.telemetry import tracing
from tests.support.server import FLOODGATE

T = TypeVar("T")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every span of this test, sampled always, kept in memory (the active tracing swapped in)."""
    exporter = InMemorySpanExporter()
    active = tracing.create_tracing(
        {"OTEL_TRACES_SAMPLER": "always_on"}, processors=[SimpleSpanProcessor(exporter)]
    )
    monkeypatch.setattr(tracing, "ACTIVE", active)
    yield exporter
    active.provider.shutdown()


def migrated_sqlite(workdir: Path) -> dict[str, str]:
    """Env for a service on a fresh, migrated SQLite file in `workdir`."""
    env = {"FLOODGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'telemetry.db'}"}
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FLOODGATE_", "OTEL_"))}
    subprocess.run(
        [str(FLOODGATE), "migrate"], env={**full, **env}, cwd=workdir, check=True, timeout=60
    )
    return env


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll until `probe` returns something truthy (an observable state, not a sleep)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or probe}: last={last!r}")


def scrape(url: str, *, openmetrics: bool = False) -> str:
    headers = {"accept": OPENMETRICS} if openmetrics else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    return response.text


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (text or OpenMetrics format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, rest = line.partition(" # ")[0].rpartition(" ")
        metric = series.split("{", 1)[0]
        if metric != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(rest)
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
