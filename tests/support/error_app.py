"""A test-only app: the production app plus routes that fail, served the way `floodgate serve`
serves it (uvicorn, uvloop, the head-limited protocol). Never imported by the service.

Run: `python -m tests.support.error_app PORT` (settings from FLOODGATE_* as usual).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)

from floodgate.app import create_app
from floodgate.settings import load_settings

SECRET = "secret.person@example.com"  # a statement parameter that must never reach the log


def _shutdown_error() -> sqlalchemy.exc.StatementError:
    """What SQLAlchemy raises for a write on a session the server ended (a restart)."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]
    error = asyncpg.AdminShutdownError("terminating connection due to administrator command")
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)
    except Exception as adapted:
        return sqlalchemy.exc.DBAPIError.instance(
            "INSERT INTO users (email) VALUES ($1)", (SECRET,), adapted, dbapi.Error
        )
    raise AssertionError("not translated")


def create_error_app() -> FastAPI:
    app = create_app()

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug in a route")

    @app.get("/test/sql-bug")
    async def sql_bug(request: Request) -> None:
        # A DBAPIError that is not a connection problem, through the real engine: a 500.
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELEC :email"), {"email": SECRET})

    @app.get("/test/db-restarting")
    async def db_restarting() -> None:
        raise _shutdown_error()

    @app.get("/test/boom-mid-stream")
    async def boom_mid_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            raise RuntimeError("a bug after the response started")

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def main(port: int) -> None:
    import uvicorn

    from floodgate.process.worker import server_options

    settings = load_settings()
    uvicorn.run(
        "tests.support.error_app:create_error_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        **server_options(settings),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
