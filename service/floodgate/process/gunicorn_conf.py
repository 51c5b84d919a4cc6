"""Gunicorn configuration for `floodgate serve --workers N` (N > 1): uvicorn workers, graceful stop.

Gunicorn loads this file by path; values come from the same FLOODGATE_* settings as the app.
"""

from __future__ import annotations

import os

from floodgate.settings import load_settings

_settings = load_settings()

bind = [f"{os.environ.get('FLOODGATE_BIND_HOST', _settings.host)}:{_settings.port}"]
workers = _settings.workers
# uvicorn_worker.UvicornWorker with the head-limited protocol and no proxy-header rewriting.
worker_class = "floodgate.process.worker.FloodgateWorker"
# Gunicorn's own trust list (also read by UvicornWorker, default 127.0.0.1) stays empty: whose
# forwarded headers count is decided by FLOODGATE_TRUSTED_PROXIES alone.
forwarded_allow_ips = ""
# In-flight requests get this long to finish after SIGTERM before a worker is killed.
graceful_timeout = int(_settings.graceful_timeout_s)
timeout = 60
keepalive = 5
# Off by default: 100 000 requests with 10 % jitter recycled each worker every ~20 s in the
# benchmark (5 k req/s per worker), costing throughput, the L1 cache and keep-alive connections.
# Set FLOODGATE_WORKER_MAX_REQUESTS if a dependency leaks; the jitter keeps workers apart.
max_requests = _settings.worker_max_requests
max_requests_jitter = _settings.worker_max_requests // 10
accesslog = None
errorlog = "-"
loglevel = _settings.log_level
proc_name = "floodgate"
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - heartbeat files

# --- telemetry ---------------------------------------------------------------------------------
# The metrics directory is prepared in the arbiter before any worker exists; tracing starts in each
# worker after the fork (exporter threads do not survive one); dead workers' counts are kept.
# Importing these modules loads neither prometheus_client nor a tracer provider.
from floodgate.telemetry import gunicorn_hooks as _telemetry  # noqa: E402
from floodgate.telemetry.logs import gunicorn_logconfig  # noqa: E402

logconfig_dict = gunicorn_logconfig(_settings.log_level)


def on_starting(server: object) -> None:
    _telemetry.on_starting(server, _settings.metrics_multiproc_dir)


post_fork = _telemetry.post_fork
worker_exit = _telemetry.worker_exit
child_exit = _telemetry.child_exit
on_exit = _telemetry.on_exit
