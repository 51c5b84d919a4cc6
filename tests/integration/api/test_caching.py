"""The domain's use of the cache: ETag/304, no stale read after a write, totals kept exact."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Scope
from tests.support.builders import create_message, create_user

from floodgate.cache import CachedRoute, ResponseCacheMiddleware, check_routes
from floodgate.cache.routes import DirectLoader


def test_cache_keys_cover_everything_the_endpoints_read(app: FastAPI) -> None:
    assert check_routes(app, _served_routes(app).values()) == []


async def test_etag_and_304(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    message = await create_message(client, user["id"], "cached")
    first = await client.get(f"/api/v1/messages/{message['id']}")
    second = await client.get(f"/api/v1/messages/{message['id']}")
    assert first.json() == second.json() == message
    etag = second.headers["etag"]
    assert etag.startswith('"')
    assert first.headers.get("etag") in (None, etag)
    assert second.headers["cache-control"] == "no-cache"
    revalidated = await client.get(
        f"/api/v1/messages/{message['id']}", headers={"if-none-match": etag}
    )
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    # Leading zeros name the same resource and the same cache entry.
    assert (await client.get(f"/api/v1/messages/00{message['id']}")).json() == message


async def test_no_stale_read_after_patch_or_delete(client: httpx.AsyncClient) -> None:
    user = await create_user(client, name="Old")
    message = await create_message(client, user["id"], "v1")
    for _ in range(2):  # fill the cache
        await client.get(f"/api/v1/messages/{message['id']}")
        await client.get(f"/api/v1/users/{user['id']}")
    etag = (await client.get(f"/api/v1/messages/{message['id']}")).headers["etag"]

    await client.patch(f"/api/v1/messages/{message['id']}", json={"body": "v2"})
    await client.patch(f"/api/v1/users/{user['id']}", json={"name": "New"})
    after = await client.get(f"/api/v1/messages/{message['id']}", headers={"if-none-match": etag})
    assert after.status_code == 200
    assert after.json()["body"] == "v2"
    assert after.headers["etag"] != etag
    assert (await client.get(f"/api/v1/users/{user['id']}")).json()["name"] == "New"

    await client.delete(f"/api/v1/users/{user['id']}")  # takes the message along
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/messages/{message['id']}")).status_code == 404


async def test_totals_follow_inserts_and_deletes(client: httpx.AsyncClient) -> None:
    async def totals() -> tuple[int, int, int]:
        everything = (await client.get("/api/v1/messages")).json()["meta"]["total"]
        mine = (await client.get("/api/v1/messages", params={"user_id": alice["id"]})).json()
        users = (await client.get("/api/v1/users")).json()["meta"]["total"]
        return everything, mine["meta"]["total"], users

    alice = await create_user(client)
    assert await totals() == (0, 0, 1)
    bob = await create_user(client)
    first = await create_message(client, alice["id"])
    await create_message(client, bob["id"])
    assert await totals() == (2, 1, 2)
    await client.delete(f"/api/v1/messages/{first['id']}")
    assert await totals() == (1, 0, 2)
    await client.delete(f"/api/v1/users/{bob['id']}")
    assert await totals() == (0, 0, 1)


async def test_a_404_is_not_cached(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    next_id = (await create_message(client, user["id"]))["id"] + 1
    for _ in range(2):
        assert (await client.get(f"/api/v1/messages/{next_id}")).status_code == 404
    created = await create_message(client, user["id"])
    assert created["id"] == next_id
    assert (await client.get(f"/api/v1/messages/{next_id}")).json() == created


async def test_direct_loaders_give_exactly_what_the_endpoints_give(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A miss is filled by the route's direct loader; its bytes must be the endpoint's."""
    user = await create_user(client, name='Zoë "quoted" \\ <tag> 😀')
    message = await create_message(client, user["id"], "line 1\nline 2\t¿ünïcode? 😀 \u2028")
    cache = app.state.cache
    routes = _served_routes(app)
    cases = [
        (routes["message"], f"/api/v1/messages/{message['id']}", {"message_id": message["id"]}),
        (routes["user"], f"/api/v1/users/{user['id']}", {"user_id": user["id"]}),
    ]
    calls: list[str] = []
    for route, path, params in cases:
        assert route.direct is not None
        monkeypatch.setattr(route, "direct", _counting(route.direct, route.name, calls))
        await cache.invalidate(route, **params)
        direct = await client.get(path)
        await cache.invalidate(route, **params)
        monkeypatch.setattr(route, "direct", None)  # the next miss runs the endpoint
        routed = await client.get(path)
        assert direct.status_code == routed.status_code == 200
        assert direct.content == routed.content
        assert direct.headers["content-type"] == routed.headers["content-type"]
        assert direct.headers["etag"] == routed.headers["etag"]
    assert calls == ["message", "user"]


def _served_routes(app: FastAPI) -> dict[str, CachedRoute]:
    """The routes the app's cache middleware serves (their direct loaders read the app's reader)."""
    (cached,) = [m for m in app.user_middleware if m.cls is ResponseCacheMiddleware]
    return {route.name: route for route in cached.kwargs["routes"]}


def _counting(loader: DirectLoader, name: str, calls: list[str]) -> DirectLoader:
    async def counted(scope: Scope, params: Mapping[str, str]) -> bytes | None:
        calls.append(name)
        return await loader(scope, params)

    return counted


async def test_ids_not_in_canonical_form_are_left_to_fastapi(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    message = await create_message(client, user["id"], "spelled differently")
    mid = message["id"]
    # FastAPI decides these (the direct loader declines them): same answers as before.
    assert (await client.get(f"/api/v1/messages/0{mid}")).json() == message
    for bad in ("0", "-1", "9223372036854775808", "1e3", "٣"):
        response = await client.get(f"/api/v1/messages/{bad}")
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/messages/9223372036854775807")).status_code == 404
