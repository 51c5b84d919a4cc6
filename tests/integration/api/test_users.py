"""Users CRUD and name search, on every backend."""

from __future__ import annotations

import httpx
from tests.support.builders import create_message, create_user, random_email, user_payload


async def test_create_then_get(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/users", json=user_payload(name="Ada"))
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/api/v1/users/{created['id']}"
    assert created["created_at"].endswith("Z") or created["created_at"].endswith("+00:00")
    fetched = await client.get(f"/api/v1/users/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_email_is_normalised_and_unique(client: httpx.AsyncClient) -> None:
    email = random_email()
    await create_user(client, email=email.upper())
    duplicate = await client.post("/api/v1/users", json=user_payload(email=email))
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    problem = duplicate.json()
    assert problem["status"] == 409
    assert problem["type"].endswith("/conflict")
    assert email in problem["detail"]


async def test_patch_changes_only_given_fields(client: httpx.AsyncClient) -> None:
    user = await create_user(client, name="Before")
    response = await client.patch(f"/api/v1/users/{user['id']}", json={"name": "After"})
    assert response.status_code == 200
    assert response.json() == {**user, "name": "After"}


async def test_patch_to_taken_email_conflicts(client: httpx.AsyncClient) -> None:
    first = await create_user(client)
    second = await create_user(client)
    response = await client.patch(f"/api/v1/users/{second['id']}", json={"email": first["email"]})
    assert response.status_code == 409
    assert (await client.get(f"/api/v1/users/{second['id']}")).json() == second


async def test_patch_null_is_refused(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    response = await client.patch(f"/api/v1/users/{user['id']}", json={"name": None})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "name"]


async def test_delete_removes_user_and_messages(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    message = await create_message(client, user["id"])
    assert (await client.delete(f"/api/v1/users/{user['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/messages/{message['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/users/{user['id']}")).status_code == 404


async def test_missing_user_is_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/424242")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "user 424242 does not exist"


async def test_name_search_is_case_insensitive_substring(client: httpx.AsyncClient) -> None:
    for name in ("Johnny Cash", "john doe", "Elton JOHN", "Paul"):
        await create_user(client, name=name)
    response = await client.get("/api/v1/users", params={"name": "JoHn"})
    assert response.status_code == 200
    names = sorted(u["name"] for u in response.json()["items"])
    assert names == ["Elton JOHN", "Johnny Cash", "john doe"]
    assert response.json()["meta"] == {"total": 3, "pages": 1, "current": 1}


async def test_like_wildcards_in_search_match_literally(client: httpx.AsyncClient) -> None:
    for name in ("100% pure", "1000 pure", "a_b", "axb", "back\\slash"):
        await create_user(client, name=name)

    async def search(term: str) -> list[str]:
        response = await client.get("/api/v1/users", params={"name": term})
        assert response.status_code == 200, response.text
        return sorted(u["name"] for u in response.json()["items"])

    assert await search("0%") == ["100% pure"]
    assert await search("%") == ["100% pure"]
    assert await search("a_b") == ["a_b"]
    assert await search("_") == ["a_b"]
    assert await search("\\") == ["back\\slash"]
    assert await search("'; DROP TABLE users; --") == []
    assert len(await search("")) == 5


async def test_user_list_offset_pages(client: httpx.AsyncClient) -> None:
    ids = [(await create_user(client, name=f"pager {i}"))["id"] for i in range(7)]
    first = (await client.get("/api/v1/users", params={"per_page": 3})).json()
    last = (await client.get("/api/v1/users", params={"per_page": 3, "page": 3})).json()
    beyond = (await client.get("/api/v1/users", params={"per_page": 3, "page": 9})).json()
    assert [u["id"] for u in first["items"]] == ids[:3]
    assert first["meta"] == {"total": 7, "pages": 3, "current": 1}
    assert [u["id"] for u in last["items"]] == ids[6:]
    assert beyond == {"items": [], "meta": {"total": 7, "pages": 3, "current": 9}}
