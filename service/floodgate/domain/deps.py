"""FastAPI dependencies shared by the domain routes: DB session and reader, settings, cursors.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, a costly hop for a
function that only reads app state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from floodgate.cache import TieredCache
from floodgate.pagination import CursorCodec
from floodgate.settings import Settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


async def get_reader(request: Request) -> AsyncEngine:
    """Reads use Core on an autocommit view of the pool (see `floodgate.db.autocommit_view`)."""
    reader: AsyncEngine = request.app.state.reader
    return reader


async def get_writer(request: Request) -> AsyncEngine:
    """Single-statement writes: the same autocommit view (the statement is its own transaction)."""
    writer: AsyncEngine = request.app.state.reader
    return writer


async def get_cache(request: Request) -> TieredCache:
    cache: TieredCache = request.app.state.cache
    return cache


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_cursor_codec(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursor_codec
    return codec


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReaderDep = Annotated[AsyncEngine, Depends(get_reader)]
WriterDep = Annotated[AsyncEngine, Depends(get_writer)]
CacheDep = Annotated[TieredCache, Depends(get_cache)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CursorCodecDep = Annotated[CursorCodec, Depends(get_cursor_codec)]
