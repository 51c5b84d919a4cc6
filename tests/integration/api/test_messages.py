"""Messages CRUD on every backend."""

from __future__ import annotations

import httpx
from tests.support.builders import create_message, create_user


async def test_message_lifecycle(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    created = await create_message(client, user["id"], "first")
    assert created["user_id"] == user["id"]
    assert created["body"] == "first"

    fetched = await client.get(f"/api/v1/messages/{created['id']}")
    assert fetched.json() == created

    patched = await client.patch(f"/api/v1/messages/{created['id']}", json={"body": "second"})
    assert patched.status_code == 200
    assert patched.json()["body"] == "second"
    assert patched.json()["created_at"] == created["created_at"]
    assert patched.json()["updated_at"] > created["updated_at"]

    assert (await client.delete(f"/api/v1/messages/{created['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/messages/{created['id']}")).status_code == 404
    assert (
        await client.patch(f"/api/v1/messages/{created['id']}", json={"body": "x"})
    ).status_code == 404


async def test_message_for_unknown_user_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/messages", json={"user_id": 987654, "body": "hi"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "user_id"]


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    created = await create_message(client, user["id"])
    response = await client.patch(f"/api/v1/messages/{created['id']}", json={})
    assert response.status_code == 200
    assert response.json() == created


async def test_filter_by_user(client: httpx.AsyncClient) -> None:
    alice, bob = await create_user(client), await create_user(client)
    mine = [(await create_message(client, alice["id"], f"a{i}"))["id"] for i in range(3)]
    await create_message(client, bob["id"], "b")
    page = (await client.get("/api/v1/messages", params={"user_id": alice["id"]})).json()
    assert [m["id"] for m in page["items"]] == mine
    assert page["meta"]["total"] == 3
    keyset = (
        await client.get("/api/v1/messages", params={"user_id": alice["id"], "limit": 10})
    ).json()
    assert [m["id"] for m in keyset["items"]] == mine
    assert keyset["meta"] == {"next_cursor": None, "limit": 10}


async def test_unicode_round_trips(client: httpx.AsyncClient) -> None:
    user = await create_user(client, name="Zoë Ōkubo 李")
    text = "emoji 🚀, RTL مرحبا, combining é"
    created = await create_message(client, user["id"], text)
    assert (await client.get(f"/api/v1/messages/{created['id']}")).json()["body"] == text
