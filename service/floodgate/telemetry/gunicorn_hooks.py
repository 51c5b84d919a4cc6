"""The gunicorn server hooks telemetry needs; `gunicorn_conf.py` binds them.

Order matters: the metrics directory is exported in the arbiter before any worker exists (and before
prometheus_client is imported anywhere), tracing starts in each worker after the fork, and dead
workers are accounted for by the arbiter.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from floodgate.telemetry import multiprocess, tracing

log = logging.getLogger("floodgate.telemetry")
_created_directory: Path | None = None


def on_starting(server: Any, configured: Path | None = None) -> None:
    global _created_directory
    if "prometheus_client" in sys.modules:
        # Its storage class was chosen at import: metrics would live in one process's memory only.
        raise RuntimeError("prometheus_client was imported in the arbiter before on_starting")
    path, created = multiprocess.prepare_directory(configured)
    _created_directory = path if created else None
    log.info("metrics multiprocess directory ready", extra={"path": str(path)})


def post_fork(server: Any, worker: Any) -> None:
    multiprocess.ARBITER_PID = os.getppid()
    tracing.start_tracing()


def worker_exit(server: Any, worker: Any) -> None:
    tracing.shutdown_tracing()


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    if _created_directory is not None:
        shutil.rmtree(_created_directory, ignore_errors=True)
