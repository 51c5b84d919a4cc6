"""The worker process's own small HTTP endpoint: `/metrics` for Prometheus, `/healthz` for the
kubelet. It runs on the worker's event loop, so an answer is itself proof the loop is not blocked;
`/healthz` also fails when no consumer loop has completed a step for `stall_after_s` (a read or
renewal hung past every socket timeout).

Served by uvicorn (already the API's server) with its signal handling off: SIGTERM belongs to the
workers, which drain, and this endpoint closes after them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from floodgate.telemetry import multiprocess
from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.exposition import build_registry, metrics_endpoint

STALL_AFTER_S: Final = 30.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the workers own SIGTERM/SIGINT (they drain first)


def admin_app(last_steps: Callable[[], Sequence[float]], stall_after_s: float) -> Starlette:
    """`last_steps()` gives each consumer loop's last completed step (time.monotonic())."""
    metrics = metrics_endpoint(build_registry(ExemplarStore(multiprocess.directory())))

    async def healthz(_request: Request) -> Response:
        now = time.monotonic()
        stalled = [round(now - at, 1) for at in last_steps() if now - at > stall_after_s]
        if stalled:
            return JSONResponse({"status": "stalled", "seconds_since_step": stalled}, 503)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/metrics", metrics), Route("/healthz", healthz)]  # type: ignore[arg-type]
    )


def admin_server(
    host: str,
    port: int,
    last_steps: Callable[[], Sequence[float]],
    stall_after_s: float = STALL_AFTER_S,
) -> uvicorn.Server:
    config = uvicorn.Config(
        admin_app(last_steps, stall_after_s),
        host=host,
        port=port,
        log_config=None,  # our JSON logging is already configured
        access_log=False,
        lifespan="off",
    )
    return _Server(config)
