"""A tiny FastAPI app for the multi-process tests: a cached route, a cached total, a 'DB' in Redis.

Served by uvicorn subprocesses (`--factory tests.integration.cache.served_app:create_app`),
configured by environment: FG_CACHE_URL, FG_BUS_URL, FG_DB_URL, FG_PREFIX, FG_LOAD_DELAY,
FG_LOCK_TTL. Every database read increments a counter in the DB, so tests count loads across
processes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

from floodgate.cache import CachedRoute, ResponseCacheMiddleware, TieredCache, make_key

ITEM = CachedRoute(
    name="item", namespace="items", path="/items/{item_id}", path_params={"item_id": int}
)


def create_app() -> FastAPI:
    env = os.environ
    prefix = env["FG_PREFIX"]
    delay = float(env.get("FG_LOAD_DELAY", "0"))
    lock_ttl = float(env.get("FG_LOCK_TTL", "2"))
    cache = TieredCache.from_settings(
        env["FG_CACHE_URL"],
        env["FG_BUS_URL"],
        key_prefix=prefix,
        lock_ttl_s=lock_ttl,
        lock_wait_s=lock_ttl + 2,
    )
    db = aioredis.Redis.from_url(env["FG_DB_URL"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cache.start()
        yield
        await cache.close()
        await db.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        await db.incr(f"{prefix}:loads:{item_id}")
        if delay:
            await asyncio.sleep(delay)
        value = await db.get(f"{prefix}:item:{item_id}")
        if value is None:
            raise HTTPException(404, "no such item")
        return {"id": item_id, "value": value.decode() if isinstance(value, bytes) else value}

    @app.put("/items/{item_id}")
    async def put_item(item_id: int, value: str) -> dict[str, object]:
        await db.set(f"{prefix}:item:{item_id}", value)  # the transaction commits...
        await cache.invalidate_keys(  # ...then the cache is told
            ITEM.key(item_id=item_id), make_key("items", "total", owner=item_id)
        )
        return {"id": item_id, "value": value}

    @app.get("/totals/{item_id}")
    async def total(item_id: int) -> dict[str, object]:
        async def count() -> int:
            await db.incr(f"{prefix}:total_loads")
            return len(await db.get(f"{prefix}:item:{item_id}") or b"")

        key = make_key("items", "total", owner=item_id)
        return {"total": await cache.get_or_load(key, count, ttl=60)}

    @app.get("/loads/{item_id}")
    async def loads(item_id: int) -> dict[str, int]:
        return {"loads": int(await db.get(f"{prefix}:loads:{item_id}") or 0)}

    app.add_middleware(ResponseCacheMiddleware, cache=cache, routes=[ITEM])
    return app
