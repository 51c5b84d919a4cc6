"""A tiny Starlette app behind RateLimitMiddleware, served by uvicorn subprocesses in the tests.

Environment: FG_LIMITS_URL, FG_POLICY_FILE, FG_KEY_TAG, FG_TRUSTED_PROXIES (comma list).
`/health` is never limited (the policies used in tests match /limited only).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from floodgate.ratelimit import RateLimiter, RateLimitMiddleware
from floodgate.ratelimit.middleware import ASGIApp


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app() -> ASGIApp:
    policy_file = os.environ.get("FG_POLICY_FILE")
    limiter = RateLimiter.from_settings(
        limits_url=os.environ.get("FG_LIMITS_URL", "memory://"),
        policy_file=Path(policy_file) if policy_file else None,
        trusted_proxies=[p for p in os.environ.get("FG_TRUSTED_PROXIES", "").split(",") if p],
        key_tag=os.environ.get("FG_KEY_TAG", "floodgate"),
        timeout_s=1.0,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await limiter.start()
        yield
        await limiter.close()

    app = Starlette(
        routes=[Route("/health", ok), Route("/limited/{rest:path}", ok)], lifespan=lifespan
    )
    return RateLimitMiddleware(app, limiter)
