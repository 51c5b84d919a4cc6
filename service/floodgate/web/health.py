"""Liveness and readiness probes: /healthz never touches a dependency, /readyz checks them.

Only required dependencies (the database) make a pod unready. Components that fail open (the
cache sidecar, the shared limits Redis) are reported as degraded but keep the pod in service:
taking every pod out of the Service because a shared Redis hiccuped would turn a degraded
feature into a full outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from floodgate.web.problems import problem_response

Probe = Callable[[], Awaitable[bool]]
_CHECK_TIMEOUT_S = 2.0

router = APIRouter(include_in_schema=False)
_OK_BODY = b'{"status":"ok"}'


@dataclass(frozen=True)
class ReadinessCheck:
    probe: Probe
    required: bool = True


@router.get("/healthz")
async def healthz() -> Response:
    return Response(_OK_BODY, media_type="application/json")


async def _passes(probe: Probe) -> bool:
    try:
        return await asyncio.wait_for(probe(), _CHECK_TIMEOUT_S)
    except Exception:
        return False


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    results = await asyncio.gather(*(_passes(c.probe) for c in checks.values()))
    state = dict(zip(checks, results, strict=True))
    failed = [name for name, ok in state.items() if not ok and checks[name].required]
    if failed:
        return problem_response(
            503, f"not ready: {', '.join(failed)} unreachable", type_slug="not-ready"
        )
    degraded = [name for name, ok in state.items() if not ok]
    body = {"status": "degraded" if degraded else "ok", "degraded": degraded}
    return Response(orjson.dumps(body), media_type="application/json")


def database_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    return probe
