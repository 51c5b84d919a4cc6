"""The example domain (users and messages). Platform packages never import it; the app mounts it.

Everything the frame needs from a domain is declared here: its routes, its cached routes, its
OpenAPI summary and its migrations (the folder next to this file, with its own `env.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlalchemy import MetaData

from floodgate.cache import CachedRoute
from floodgate.db.reads import Reader

if TYPE_CHECKING:
    from floodgate.jobs.rows import JobType

SUMMARY = "Users and messages, fast, with every production concern switched on."
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_router() -> APIRouter:
    """The domain's routes under /api/v1."""
    from floodgate.domain.messages.router import router as messages_router
    from floodgate.domain.users.router import router as users_router

    api = APIRouter(prefix="/api/v1")
    api.include_router(users_router)
    api.include_router(messages_router)
    return api


def job_types() -> tuple[JobType, ...]:
    """The jobs the domain runs (`floodgate worker`, or in process on `memory://`)."""
    from floodgate.domain.messages.imports import IMPORT_JOB

    return (IMPORT_JOB,)


def cached_routes(reader: Callable[[], Reader]) -> tuple[CachedRoute, ...]:
    """Routes whose GET responses the cache middleware serves; their direct loaders read through
    `reader()`, the app's reader (built in the lifespan, after the routes)."""
    from floodgate.domain.caching import routes

    return routes(reader)


def metadata() -> MetaData:
    """The metadata with every table of the domain and the job rows registered (for migrations
    and autogenerate)."""
    from sqlmodel import SQLModel

    import floodgate.domain.messages.models
    import floodgate.domain.users.models
    import floodgate.jobs.records  # noqa: F401 - registers the tables on SQLModel.metadata

    return SQLModel.metadata
