"""The example domain (users and messages). Platform packages never import it; the app mounts it."""

from __future__ import annotations

from fastapi import APIRouter

from floodgate.cache import CachedRoute


def build_router() -> APIRouter:
    """The domain's routes under /api/v1."""
    from floodgate.domain.messages.router import router as messages_router
    from floodgate.domain.users.router import router as users_router

    api = APIRouter(prefix="/api/v1")
    api.include_router(users_router)
    api.include_router(messages_router)
    return api


def cached_routes() -> tuple[CachedRoute, ...]:
    """Routes whose GET responses the cache middleware serves."""
    from floodgate.domain.caching import ROUTES

    return ROUTES
