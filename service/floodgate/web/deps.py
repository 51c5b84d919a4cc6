"""FastAPI dependencies of the domain routes: DB session, reader, writer, cache, settings, cursors.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, a costly hop for a
function that only reads app state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from floodgate.cache import TieredCache
from floodgate.db.reads import Reader
from floodgate.settings import Settings
from floodgate.web.pagination import CursorCodec


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def _app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving `app.state.<name>`, set by the app factory or its lifespan."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


SessionDep = Annotated[AsyncSession, Depends(get_session)]
# Reads: the backend's `Reader`, built in the lifespan (see `floodgate.db.reads`).
ReaderDep = Annotated[Reader, Depends(_app_state("reader"))]
# Single-statement writes (`INSERT … RETURNING`): the autocommit view of the pool (the statement
# is its own transaction; see `floodgate.db.engine.autocommit_view`).
WriterDep = Annotated[AsyncEngine, Depends(_app_state("writer"))]
CacheDep = Annotated[TieredCache, Depends(_app_state("cache"))]
SettingsDep = Annotated[Settings, Depends(_app_state("settings"))]
CursorCodecDep = Annotated[CursorCodec, Depends(_app_state("cursor_codec"))]
