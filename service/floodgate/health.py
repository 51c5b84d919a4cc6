"""Liveness and readiness probes: /healthz never touches a dependency, /readyz checks them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from floodgate.problems import problem_response

ReadinessCheck = Callable[[], Awaitable[None]]
_CHECK_TIMEOUT_S = 2.0

router = APIRouter(include_in_schema=False)
_OK_BODY = b'{"status":"ok"}'


@router.get("/healthz")
async def healthz() -> Response:
    return Response(_OK_BODY, media_type="application/json")


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    failed: list[str] = []
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), _CHECK_TIMEOUT_S)
        except Exception:
            failed.append(name)
    if failed:
        return problem_response(
            503, f"not ready: {', '.join(failed)} unreachable", type_slug="not-ready"
        )
    return Response(_OK_BODY, media_type="application/json")


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check
