"""The application factory: `create_app(settings)` builds the app; its lifespan connects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from floodgate import __version__
from floodgate.db import create_engine, create_sessionmaker, read_only_view
from floodgate.domain import build_router
from floodgate.health import database_check
from floodgate.health import router as health_router
from floodgate.http_guard import RequestGuardMiddleware
from floodgate.pagination import CursorCodec
from floodgate.problems import install_problem_handlers
from floodgate.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app. Nothing connects until the lifespan starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reader = read_only_view(engine)
        app.state.readiness_checks = {"database": database_check(engine)}
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Floodgate",
        version=__version__,
        summary="Users and messages, fast, with every production concern switched on.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cursor_codec = CursorCodec(settings.cursor_secret.get_secret_value().encode())
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(build_router())
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
