"""Offset pages and keyset cursors: shapes, Link header, and exactly-once walks under inserts."""

from __future__ import annotations

import random
from typing import Any

import httpx
from tests.support.builders import create_message, create_user


async def _walk(client: httpx.AsyncClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    response = await client.get("/api/v1/messages", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        link = response.headers.get("link")
        if body["meta"]["next_cursor"] is None:
            assert link is None
            return pages
        assert link is not None
        assert link.endswith('>; rel="next"')
        response = await client.get(link[1 : link.index(">")])


async def test_offset_meta_matches_seed_shape(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    for i in range(5):
        await create_message(client, user["id"], f"m{i}")
    body = (await client.get("/api/v1/messages", params={"page": 2, "per_page": 2})).json()
    assert set(body) == {"items", "meta"}
    assert body["meta"] == {"total": 5, "pages": 3, "current": 2}
    assert [m["body"] for m in body["items"]] == ["m2", "m3"]


async def test_empty_table_pages(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/messages")).json()
    assert body == {"items": [], "meta": {"total": 0, "pages": 0, "current": 1}}
    keyset = (await client.get("/api/v1/messages", params={"limit": 5})).json()
    assert keyset == {"items": [], "meta": {"next_cursor": None, "limit": 5}}


async def test_keyset_walk_follows_link_header(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    ids = [(await create_message(client, user["id"], f"m{i}"))["id"] for i in range(7)]
    pages = await _walk(client, {"limit": 3})
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [m["id"] for p in pages for m in p["items"]] == ids


async def test_keyset_walk_sees_every_row_once_while_rows_are_inserted(
    client: httpx.AsyncClient,
) -> None:
    rng = random.Random(7)
    users = [await create_user(client) for _ in range(3)]
    before = {(await create_message(client, rng.choice(users)["id"]))["id"] for _ in range(40)}
    seen: list[int] = []
    response = await client.get("/api/v1/messages", params={"limit": 4})
    inserted: set[int] = set()
    while True:
        body = response.json()
        seen.extend(m["id"] for m in body["items"])
        # Writers keep going while the reader pages through.
        for _ in range(rng.randint(0, 3)):
            inserted.add((await create_message(client, rng.choice(users)["id"]))["id"])
        if body["meta"]["next_cursor"] is None:
            break
        response = await client.get(
            "/api/v1/messages", params={"limit": 4, "cursor": body["meta"]["next_cursor"]}
        )
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert before <= set(seen), "a row that existed before the walk was skipped"
    assert set(seen) <= before | inserted


async def test_cursor_is_bound_to_its_filter(client: httpx.AsyncClient) -> None:
    alice, bob = await create_user(client), await create_user(client)
    for _ in range(3):
        await create_message(client, alice["id"])
    body = (
        await client.get("/api/v1/messages", params={"user_id": alice["id"], "limit": 1})
    ).json()
    cursor = body["meta"]["next_cursor"]
    assert cursor
    other = await client.get(
        "/api/v1/messages", params={"user_id": bob["id"], "limit": 1, "cursor": cursor}
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_tampered_cursor_is_rejected(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    for _ in range(3):
        await create_message(client, user["id"])
    cursor = (await client.get("/api/v1/messages", params={"limit": 1})).json()["meta"][
        "next_cursor"
    ]
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    response = await client.get("/api/v1/messages", params={"limit": 1, "cursor": flipped})
    assert response.status_code == 422
