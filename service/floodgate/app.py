"""The application factory: `create_app(settings)` builds the app; its lifespan connects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from floodgate import __version__
from floodgate.cache import ResponseCacheMiddleware, TieredCache
from floodgate.db.engine import autocommit_view, create_engine, create_sessionmaker
from floodgate.db.reads import Reader, create_reader
from floodgate.domain import SUMMARY, build_router, cached_routes, job_types
from floodgate.jobs.inprocess import InProcessQueue
from floodgate.jobs.queue import JobQueue
from floodgate.jobs.router import router as jobs_router
from floodgate.jobs.rows import JobRows
from floodgate.jobs.store import JobStore
from floodgate.jobs.submit import Enqueuer, Submitter
from floodgate.process.gc_tuning import freeze_startup_heap, thaw_heap
from floodgate.ratelimit import RateLimiter, RateLimitMiddleware
from floodgate.ratelimit.sources.redis import RedisPolicySource
from floodgate.redis_client import redis_client
from floodgate.settings import Settings, load_settings
from floodgate.telemetry import (  # telemetry
    install_telemetry,
    instrument_engine,
    start_telemetry,
    stop_telemetry,
)
from floodgate.web.health import Probe, ReadinessCheck, database_probe
from floodgate.web.health import router as health_router
from floodgate.web.http_guard import RequestGuardMiddleware
from floodgate.web.methods import install_methods
from floodgate.web.openapi import install_openapi
from floodgate.web.pagination import CursorCodec
from floodgate.web.problems import install_problem_handlers
from floodgate.web.unhandled import UnhandledErrorMiddleware


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Policies come from the file when one is set, else from the operator via the shared Redis."""
    source = None
    if settings.policy_file is None and settings.uses_shared_redis:
        source = RedisPolicySource(settings.limits_url)
    return RateLimiter.from_settings(
        limits_url=settings.limits_url,
        policy_file=settings.policy_file,
        policy_source=source,
        trusted_proxies=settings.trusted_proxies,
        legacy_headers=settings.ratelimit_legacy_headers,
        timeout_s=settings.ratelimit_timeout_s,
    )


def build_jobs(settings: Settings, engine: AsyncEngine) -> tuple[Submitter, Enqueuer]:
    """Jobs go to the shared Redis's stream (run by `floodgate worker`), or, without one, run as
    tasks of this process (development: `make run`)."""
    store = JobStore(engine)
    queue: Enqueuer
    if settings.uses_shared_redis:
        client = redis_client(
            settings.limits_url, timeout_s=settings.cache_timeout_s * 8, role="jobs"
        )
        queue = JobQueue(client, "default", max_age_s=settings.jobs_max_age_s)
    else:
        rows = JobRows(store, {t.name: t for t in job_types()})
        queue = InProcessQueue(
            rows,
            max_deliveries=settings.jobs_max_deliveries,
            backoff_base_s=settings.jobs_backoff_base_s,
            backoff_max_s=settings.jobs_backoff_max_s,
        )
    return Submitter(store, {"default": queue}), queue


async def close_queue(queue: Enqueuer) -> None:
    if isinstance(queue, InProcessQueue):
        await queue.close()
    elif isinstance(queue, JobQueue):
        await queue.redis.aclose()


def cache_probe(cache: TieredCache) -> Probe:
    async def probe() -> bool:
        return all((await cache.check()).values())

    return probe


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app. Nothing connects until the lifespan starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_telemetry()  # telemetry
        engine = create_engine(settings)
        instrument_engine(engine)  # telemetry
        reader = create_reader(engine, sqlite_read_threads=settings.db_sqlite_read_threads)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reader = reader
        app.state.writer = autocommit_view(engine)
        app.state.jobs, queue = build_jobs(settings, engine)
        await cache.start()
        await limiter.start()
        app.state.readiness_checks = {
            "database": ReadinessCheck(database_probe(engine)),
            "limits": ReadinessCheck(limiter.ping, required=False),
            "cache": ReadinessCheck(cache_probe(cache), required=False),
        }
        if settings.gc_freeze:
            freeze_startup_heap()
        try:
            yield
        finally:
            if settings.gc_freeze:
                thaw_heap()
            await close_queue(queue)
            await limiter.close()
            await cache.close()
            await reader.close()
            await engine.dispose()
            await stop_telemetry()  # telemetry

    app = FastAPI(
        title="Floodgate",
        version=__version__,
        summary=SUMMARY,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cursor_codec = CursorCodec(settings.cursor_secret.get_secret_value().encode())
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(build_router())
    app.include_router(jobs_router, prefix="/api/v1")
    install_methods(app)  # full Allow on 405, OPTIONS, relative trailing-slash redirects
    install_openapi(app, settings)  # the document states the served statuses and maximums
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        routes=app.router.routes,
        large_bodies={"/api/v1/messages:import": settings.jobs_import_max_body_bytes},
    )

    def current_reader() -> Reader:
        # The direct loaders' reader: the lifespan builds it, after the cached routes exist.
        reader: Reader = app.state.reader
        return reader

    # Built here, started in the lifespan: Starlette builds the middleware stack before that.
    # Added innermost first: cache inside rate limiting inside telemetry.
    cache = TieredCache.from_settings(
        settings.cache_url,
        settings.limits_url,
        l1_max_entries=settings.cache_l1_max_entries,
        default_ttl_s=settings.cache_default_ttl_s,
        timeout_s=settings.cache_timeout_s,
    )
    app.state.cache = cache
    app.add_middleware(
        ResponseCacheMiddleware,
        cache=cache,
        routes=cached_routes(current_reader),
        cache_control=settings.cache_control,
    )
    limiter = build_rate_limiter(settings)
    app.state.limiter = limiter
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    install_telemetry(app, settings)  # telemetry: last, so its middleware is the outermost
    app.add_middleware(UnhandledErrorMiddleware)  # outside telemetry, which sees the error
    return app
