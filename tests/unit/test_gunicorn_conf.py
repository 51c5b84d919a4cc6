"""The gunicorn configuration file reads FLOODGATE_* settings; workers are not recycled by count
unless asked (at 5 k req/s per worker, 100 000 requests recycled each one every ~20 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import floodgate

CONF = Path(floodgate.__file__).parent / "process" / "gunicorn_conf.py"
_PRINT = (
    "import json, runpy, sys; ns = runpy.run_path(sys.argv[1]); "
    "print(json.dumps({k: ns[k] for k in ('workers', 'max_requests', 'max_requests_jitter', "
    "'worker_class', 'graceful_timeout')}))"
)


def _conf(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    out = subprocess.run(
        [sys.executable, "-c", _PRINT, str(CONF)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def test_defaults_never_recycle_workers() -> None:
    conf = _conf(FLOODGATE_WORKERS="3")
    assert conf["workers"] == 3
    assert conf["max_requests"] == 0
    assert conf["worker_class"] == "floodgate.process.worker.FloodgateWorker"
    assert conf["graceful_timeout"] == 20


@pytest.mark.parametrize(("asked", "jitter"), [("1000000", 100_000), ("50", 5)])
def test_recycling_when_asked_is_jittered(asked: str, jitter: int) -> None:
    conf = _conf(FLOODGATE_WORKER_MAX_REQUESTS=asked)
    assert conf["max_requests"] == int(asked)
    assert conf["max_requests_jitter"] == jitter
