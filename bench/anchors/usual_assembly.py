"""The usual assembly: slowapi (Redis storage) + fastapi-cache2 (Redis backend) +
prometheus-fastapi-instrumentator + OpenTelemetry FastAPI instrumentation at 1 % sampling,
on a cached GET, wired the way each library's README shows.

Each part can be switched off (BENCH_LIMIT / BENCH_CACHE / BENCH_METRICS / BENCH_TRACING = 0) so
the same file also gives the single-library anchors. Redis at BENCH_REDIS_URL; OTLP endpoint and
sampler from the standard OTEL_* variables (the runner points them at a local sink).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response


def _on(name: str) -> bool:
    return os.environ.get(name, "1") != "0"


LIMIT, CACHE, METRICS, TRACING = (
    _on("BENCH_LIMIT"),
    _on("BENCH_CACHE"),
    _on("BENCH_METRICS"),
    _on("BENCH_TRACING"),
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# A global limit far above any rate reached here: every request is checked, none is refused.
RATE = "1000000/second"


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if CACHE:
        from fastapi_cache import FastAPICache
        from fastapi_cache.backends.redis import RedisBackend
        from redis import asyncio as aioredis

        FastAPICache.init(RedisBackend(aioredis.from_url(REDIS_URL)), prefix="fastapi-cache")
    yield


app = FastAPI(lifespan=lifespan)


async def read_item(request: Request, response: Response, item_id: int) -> dict[str, Any]:
    return {"id": item_id, "user_id": 1, "body": "hello from the usual assembly"}


handler: Callable[..., Awaitable[dict[str, Any]]] = read_item
if CACHE:
    from fastapi_cache.decorator import cache

    handler = cache(expire=600)(handler)
if LIMIT:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address, storage_uri=REDIS_URL)
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    handler = limiter.limit(RATE)(handler)
app.get("/items/{item_id}")(handler)

if METRICS:
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator().instrument(app).expose(app)

if TRACING:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(
        sampler=ParentBasedTraceIdRatio(0.01),
        resource=Resource.create({"service.name": "usual-assembly"}),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app)
