"""Ad-hoc throughput measurement of the rate limiter (not a test: run it by hand).

    .venv/bin/python -m bench.measure_ratelimit_throughput redis://127.0.0.1:6379/0

Drives a FastAPI hello app in-process (no sockets, 64 concurrent tasks) with and without
RateLimitMiddleware and prints the CPU time per request, which stays meaningful on a busy machine
where wall-clock req/s does not. Throughput relative to bare FastAPI ≈ bare CPU / variant CPU.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop
from fastapi import FastAPI

from floodgate.ratelimit import (
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    StaticPolicySource,
)
from floodgate.ratelimit.middleware import ASGIApp

CONCURRENCY = 64
REQUESTS = 20_000


def policy(requests: int) -> RateLimitPolicy:
    return RateLimitPolicy.model_validate(
        {
            "apiVersion": "floodgate.dev/v1alpha1",
            "kind": "RateLimitPolicy",
            "metadata": {"name": "bench"},
            "spec": {
                "rules": [{"name": "per-client", "limit": {"requests": requests, "period": "1s"}}]
            },
        }
    )


def hello_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"message": "hello"}

    return app


async def drive(app: ASGIApp) -> tuple[float, dict[int, int]]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
    }
    statuses: dict[int, int] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def worker(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    await asyncio.gather(*(worker(50) for _ in range(CONCURRENCY)))  # warm up
    statuses.clear()
    started = time.process_time()
    await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
    per_request = (time.process_time() - started) / (REQUESTS // CONCURRENCY * CONCURRENCY)
    return per_request * 1e6, statuses


async def measure(
    label: str, url: str | None, *, coalesce: bool = True, requests: int = 10**6
) -> float:
    limiter = None
    app: ASGIApp = hello_app()
    if url is not None:
        limiter = RateLimiter.from_settings(
            limits_url=url,
            policy_source=StaticPolicySource([policy(requests)]),
            coalesce=coalesce,
            timeout_s=5.0,
        )
        await limiter.start()
        app = RateLimitMiddleware(app, limiter)
    cpu_us, statuses = await drive(app)
    calls = getattr(limiter.store, "calls", "-") if limiter else "-"
    if limiter is not None:
        await limiter.close()
    print(f"{label:28s} {cpu_us:7.1f} us CPU/request  statuses={statuses}  store calls={calls}")
    return cpu_us


async def main(redis_url: str) -> None:
    bare = await measure("bare FastAPI", None)
    rows = [
        ("memory://", await measure("memory://", "memory://")),
        ("redis, coalesced", await measure("redis, coalesced", redis_url)),
        (
            "redis, one call per request",
            await measure("redis, uncoalesced", redis_url, coalesce=False),
        ),
        (
            "redis, all denied (memo)",
            await measure("redis, all denied (memo)", redis_url, requests=1),
        ),
    ]
    for label, cpu in rows:
        print(f"{label:28s} ≈ {bare / cpu:5.0%} of bare FastAPI throughput")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
