"""ResponseCacheMiddleware on a small FastAPI app, in-memory tiers: HTTP semantics end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Header, HTTPException, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floodgate.cache import (
    CacheConfig,
    CachedRoute,
    Param,
    ResponseCacheMiddleware,
    TieredCache,
    check_routes,
    make_etag,
)

ITEM_SPEC: dict[str, Any] = {
    "name": "item",
    "namespace": "items",
    "path": "/items/{item_id}",
    "path_params": {"item_id": int},
}
ITEM = CachedRoute(**ITEM_SPEC)
ITEMS = CachedRoute(
    name="items",
    namespace="items",
    path="/items",
    query_params={"owner": str, "page": Param(int, default=1)},
)
GREETING = CachedRoute(
    name="greeting", namespace="misc", path="/greeting", vary=("accept-language",), ttl_s=5
)
COOKIE = CachedRoute(name="cookie", namespace="misc", path="/cookie")
ROUTES = [ITEM, ITEMS, GREETING, COOKIE]


@dataclass
class Db:
    items: dict[int, str] = field(default_factory=lambda: {1: "one", 7: "seven"})
    reads: int = 0
    delay: float = 0.0


class AddHeader:
    """An outer middleware that mutates the response headers in place, like CORS does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-outer", "1")
            await send(message)

        await self.app(scope, receive, wrapped)


def build_app(cache: TieredCache, db: Db, routes: list[CachedRoute] = ROUTES) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        db.reads += 1
        if db.delay:
            await asyncio.sleep(db.delay)
        if item_id not in db.items:
            raise HTTPException(404, "no such item")
        return {"id": item_id, "name": db.items[item_id]}

    @app.patch("/items/{item_id}")
    async def patch_item(item_id: int, name: str) -> dict[str, object]:
        db.items[item_id] = name
        await cache.invalidate(ITEM, item_id=item_id)
        return {"id": item_id, "name": name}

    @app.get("/items")
    async def list_items(owner: str | None = None, page: int = 1) -> dict[str, object]:
        db.reads += 1
        return {"owner": owner, "page": page, "items": sorted(db.items)}

    @app.get("/greeting")
    async def greeting(accept_language: Annotated[str, Header()] = "en") -> dict[str, str]:
        db.reads += 1
        return {"greeting": "bonjour" if accept_language.startswith("fr") else "hello"}

    @app.get("/cookie")
    async def cookie(response: Response) -> dict[str, str]:
        db.reads += 1
        response.set_cookie("session", f"s{db.reads}")
        return {"ok": "yes"}

    app.add_middleware(ResponseCacheMiddleware, cache=cache, routes=routes)
    app.add_middleware(AddHeader)
    return app


@dataclass
class Harness:
    cache: TieredCache
    db: Db
    app: FastAPI
    client: httpx.AsyncClient


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    cache = TieredCache(CacheConfig(bus_url="memory://middleware-unit"))
    await cache.start()
    db = Db()
    app = build_app(cache, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Harness(cache, db, app, client)
    await cache.close()


async def test_miss_then_hit_serves_identical_bytes_without_the_app(h: Harness) -> None:
    first = await h.client.get("/items/7")
    second = await h.client.get("/items/7")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == b'{"id":7,"name":"seven"}'
    assert h.db.reads == 1
    assert first.headers["etag"] == second.headers["etag"] == make_etag(first.content)
    assert second.headers["cache-control"] == "no-cache"
    assert second.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(second.content))
    assert second.headers.get_list("x-outer") == ["1"]  # outer middleware still runs, once


async def test_equivalent_spellings_share_one_entry(h: Harness) -> None:
    await h.client.get("/items/7")
    assert (await h.client.get("/items/007")).json() == {"id": 7, "name": "seven"}
    assert (await h.client.get("/items/7?utm=x")).status_code == 200
    assert h.db.reads == 1


async def test_if_none_match_gives_304_without_body(h: Harness) -> None:
    etag = make_etag(b'{"id":7,"name":"seven"}')
    miss = await h.client.get("/items/7", headers={"if-none-match": etag})
    assert miss.status_code == 304
    assert miss.content == b""
    assert miss.headers["etag"] == etag
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        hit = await h.client.get("/items/7", headers={"if-none-match": header})
        assert hit.status_code == 304, header
        assert hit.content == b""
        assert hit.headers["etag"] == etag
        assert hit.headers["cache-control"] == "no-cache"
    stale = await h.client.get("/items/7", headers={"if-none-match": '"old"'})
    assert stale.status_code == 200
    assert stale.content
    assert h.db.reads == 1


async def test_write_then_read_sees_the_write(h: Harness) -> None:
    before = await h.client.get("/items/7")
    patched = await h.client.patch("/items/7", params={"name": "SEVEN"})
    assert patched.status_code == 200
    after = await h.client.get("/items/7")
    assert after.json() == {"id": 7, "name": "SEVEN"}
    assert after.headers["etag"] != before.headers["etag"]
    revalidated = await h.client.get("/items/7", headers={"if-none-match": before.headers["etag"]})
    assert revalidated.status_code == 200


async def test_errors_are_not_cached_and_other_methods_pass_through(h: Harness) -> None:
    assert (await h.client.get("/items/99")).status_code == 404
    assert (await h.client.get("/items/99")).status_code == 404
    assert h.db.reads == 2
    assert (await h.client.get("/items/abc")).status_code == 422  # not canonicalisable: app answers
    head = await h.client.head("/items/7")
    assert head.status_code == 405  # FastAPI's own answer: HEAD is not intercepted
    assert (await h.client.get("/not-cached")).status_code == 404


async def test_declared_query_parameters_are_part_of_the_key(h: Harness) -> None:
    a = await h.client.get("/items", params={"owner": "ann"})
    b = await h.client.get("/items", params={"owner": "ann", "page": "1", "junk": "z"})
    c = await h.client.get("/items", params={"owner": "bob"})
    assert a.content == b.content
    assert a.content != c.content
    assert h.db.reads == 2


async def test_vary_headers_select_the_representation(h: Harness) -> None:
    en = await h.client.get("/greeting", headers={"accept-language": "en"})
    fr = await h.client.get("/greeting", headers={"accept-language": "fr"})
    fr_again = await h.client.get("/greeting", headers={"accept-language": "fr"})
    assert en.json() == {"greeting": "hello"}
    assert fr.json() == fr_again.json() == {"greeting": "bonjour"}
    assert fr_again.headers["vary"] == "accept-language"
    assert h.db.reads == 2


async def test_responses_that_set_cookies_are_never_cached_or_shared(h: Harness) -> None:
    h.db.delay = 0.0
    responses = await asyncio.gather(*(h.client.get("/cookie") for _ in range(5)))
    cookies = {r.cookies["session"] for r in responses}
    assert len(cookies) == 5
    assert h.db.reads == 5


async def test_concurrent_misses_cause_one_downstream_call(h: Harness) -> None:
    h.db.delay = 0.05
    responses = await asyncio.gather(*(h.client.get("/items/1") for _ in range(200)))
    assert {r.status_code for r in responses} == {200}
    assert {r.content for r in responses} == {b'{"id":1,"name":"one"}'}
    assert h.db.reads == 1


async def test_concurrent_misses_share_a_404_but_do_not_store_it(h: Harness) -> None:
    h.db.delay = 0.05
    responses = await asyncio.gather(*(h.client.get("/items/404") for _ in range(20)))
    assert {r.status_code for r in responses} == {404}
    assert h.db.reads == 1
    await h.client.get("/items/404")
    assert h.db.reads == 2


def test_check_routes_accepts_the_declarations(h: Harness) -> None:
    assert check_routes(h.app, ROUTES) == []


def test_check_routes_reports_what_the_key_would_miss() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(
        thing_id: int, verbose: bool = False, x_tenant: Annotated[str, Header()] = ""
    ) -> dict[str, str]:
        return {}

    problems = check_routes(
        app,
        [
            CachedRoute(name="t", namespace="n", path="/things/{thing_id}"),
            CachedRoute(name="u", namespace="n", path="/nowhere"),
        ],
    )
    assert any("['verbose']" in p and "query" in p for p in problems)
    assert any("['x-tenant']" in p and "vary" in p for p in problems)
    assert any("/nowhere" in p for p in problems)


class DirectItems:
    """A direct loader for /items/{id}: serves ids it knows, declines or fails on the others."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.calls = 0

    async def __call__(self, scope: Scope, params: Mapping[str, str]) -> bytes | None:
        self.calls += 1
        item_id = int(params["item_id"])
        if item_id == 13:
            raise ConnectionError("the database went away")
        if item_id == 99:
            return b"x" * (1024 * 1024 + 1)  # larger than max_body_bytes: not stored
        name = self.db.items.get(item_id)
        return orjson.dumps({"id": item_id, "name": name}) if name is not None else None


@pytest.fixture
async def direct() -> AsyncIterator[tuple[Harness, DirectItems]]:
    cache = TieredCache(CacheConfig(bus_url="memory://middleware-direct"))
    await cache.start()
    db = Db(items={1: "one", 7: "seven", 13: "thirteen", 99: "big"})
    loader = DirectItems(db)
    app = build_app(cache, db, [CachedRoute(**ITEM_SPEC, direct=loader), *ROUTES[1:]])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Harness(cache, db, app, client), loader
    await cache.close()


async def test_a_direct_loader_fills_misses_without_running_the_app(
    direct: tuple[Harness, DirectItems],
) -> None:
    h, loader = direct
    first = await h.client.get("/items/7")
    second = await h.client.get("/items/7")
    assert first.content == second.content == b'{"id":7,"name":"seven"}'
    assert (loader.calls, h.db.reads) == (1, 0)
    assert first.headers["etag"] == second.headers["etag"] == make_etag(first.content)
    assert first.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(second.content))
    assert second.headers.get_list("x-outer") == ["1"]


async def test_what_a_direct_loader_declines_or_fails_on_is_answered_by_the_app(
    direct: tuple[Harness, DirectItems],
) -> None:
    h, loader = direct
    missing = await h.client.get("/items/404")  # declined: the app's own 404
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no such item"}
    failed = await h.client.get("/items/13")  # raised: the app runs instead, and is cached
    assert failed.status_code == 200
    assert failed.json()["name"] == "thirteen"
    assert (await h.client.get("/items/13")).status_code == 200
    oversized = await h.client.get("/items/99")  # too big to cache: the app's answer
    assert oversized.json() == {"id": 99, "name": "big"}
    assert (loader.calls, h.db.reads) == (3, 3)
