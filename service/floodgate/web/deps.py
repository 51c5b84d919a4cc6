"""FastAPI dependencies of the domain routes: DB session and engines, cache, settings, cursors.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, a costly hop for a
function that only reads app state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from floodgate.cache import TieredCache
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
# Reads: Core on the autocommit view of the pool (see `floodgate.db.autocommit_view`).
ReaderDep = Annotated[AsyncEngine, Depends(_app_state("reader"))]
# Single-statement writes: the same view (the statement is its own transaction).
WriterDep = Annotated[AsyncEngine, Depends(_app_state("reader"))]
CacheDep = Annotated[TieredCache, Depends(_app_state("cache"))]
SettingsDep = Annotated[Settings, Depends(_app_state("settings"))]
CursorCodecDep = Annotated[CursorCodec, Depends(_app_state("cursor_codec"))]
