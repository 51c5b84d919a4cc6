"""What the domain caches and which writes evict what (the platform cache never imports this).

Cached: single users and messages (whole responses, served by the cache middleware before FastAPI
runs) and the `COUNT(*)` behind offset pagination's `meta.total` (short TTL). Every write evicts
what it changed after its transaction commits; `TieredCache.invalidate*` returns once every
process has evicted, so no read after a successful write sees the old value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from pydantic import BaseModel
from starlette.types import Scope

from floodgate.cache import CachedRoute, TieredCache, make_key
from floodgate.cache.routes import DirectLoader
from floodgate.db.reads import Reader
from floodgate.domain.messages import service as messages
from floodgate.domain.users import service as users
from floodgate.web.responses import json_bytes
from floodgate.web.types import MAX_ID

_MAX_ID_DIGITS = len(str(MAX_ID))


def _row_id(raw: str) -> int | None:
    """The id if `raw` is one in canonical form ("7", not "+7", "07" or "7_0"), else None.

    Anything else goes through FastAPI, whose validation and errors stay the only definition.
    """
    if not (raw.isascii() and raw.isdigit()) or raw[0] == "0" or len(raw) > _MAX_ID_DIGITS:
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


FindById = Callable[[Reader, int], Awaitable[BaseModel | None]]


def _by_id(param: str, find: FindById, reader: Callable[[], Reader]) -> DirectLoader:
    """A direct loader for a row by id: `find(reader(), id)` as JSON, None for anything else."""

    async def load(_scope: Scope, params: Mapping[str, str]) -> bytes | None:
        row_id = _row_id(params[param])
        if row_id is None:
            return None
        found = await find(reader(), row_id)
        return json_bytes(found) if found is not None else None

    return load


def _row_route(namespace: str, name: str, direct: DirectLoader | None = None) -> CachedRoute:
    """`GET /api/v1/<namespace>/{<name>_id}`, cached."""
    return CachedRoute(
        name=name,
        namespace=namespace,
        path=f"/api/v1/{namespace}/{{{name}_id}}",
        path_params={f"{name}_id": int},
        direct=direct,
    )


# The declarations writes evict by (`MESSAGE.key(...)`); the served routes add the loaders.
MESSAGE = _row_route("messages", "message")
USER = _row_route("users", "user")


def routes(reader: Callable[[], Reader]) -> tuple[CachedRoute, ...]:
    """The cached routes of one app, their direct loaders reading through `reader()`.

    Misses of both are served by their direct loaders (a missing row or a bad id by FastAPI):
    routing, dependency injection and response validation were 40 % of an uncached read's CPU.
    """
    return (
        _row_route("messages", "message", _by_id("message_id", messages.find_message, reader)),
        _row_route("users", "user", _by_id("user_id", users.find_user, reader)),
    )


# Totals may lag a write by nothing (evicted on insert/delete) and live this long at most.
TOTAL_TTL_S = 5.0


def messages_total_key(user_id: int | None) -> str:
    return make_key("messages", "total", user_id=user_id if user_id is not None else "all")


def users_total_key() -> str:
    return make_key("users", "total")


async def cached_total(cache: TieredCache, key: str, count: Callable[[], Awaitable[int]]) -> int:
    return int(await cache.get_or_load(key, count, ttl=TOTAL_TTL_S))


async def message_written(
    cache: TieredCache, *, user_id: int, message_ids: Iterable[int] = (), counted: bool
) -> None:
    """After a message insert/update/delete: its response and, if rows came or went, the totals."""
    keys = [MESSAGE.key(message_id=mid) for mid in message_ids]
    if counted:
        keys += [messages_total_key(user_id), messages_total_key(None)]
    await cache.invalidate_keys(*keys)


async def user_written(
    cache: TieredCache, *, user_id: int, counted: bool, message_ids: Iterable[int] = ()
) -> None:
    """After a user insert/update/delete (a delete takes the user's messages along)."""
    keys = [USER.key(user_id=user_id)]
    if counted:
        keys.append(users_total_key())
    ids = list(message_ids)
    keys += [MESSAGE.key(message_id=mid) for mid in ids]
    if ids:
        keys += [messages_total_key(user_id), messages_total_key(None)]
    await cache.invalidate_keys(*keys)
