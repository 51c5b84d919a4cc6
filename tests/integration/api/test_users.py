"""Users CRUD and name search, on every backend."""

from __future__ import annotations

import asyncio

import httpx
import pytest
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


# The email identity policy (docs/email-identity.md): one address, whatever the spelling.
SPELLINGS_OF_ONE_ADDRESS = {
    "nfc-vs-nfd-local": ("jos\u00e9@example.com", "jose\u0301@example.com"),
    "nfc-vs-nfd-domain": ("x@caf\u00e9.example", "x@cafe\u0301.example"),
    "u-label-vs-a-label": ("x@例え.jp", "x@xn--r8jz45g.jp"),
    "a-label-case": ("x@xn--r8jz45g.jp", "X@XN--R8JZ45G.JP"),
    "unicode-case": ("élodie@exemple.fr", "ÉLODIE@EXEMPLE.FR"),
    "ideographic-full-stop": ("x@例え.jp", "x@例え。jp"),
    "surrounding-space": ("ada@example.com", " ada@example.com "),
}


@pytest.mark.parametrize(
    ("first", "second"),
    list(SPELLINGS_OF_ONE_ADDRESS.values()),
    ids=list(SPELLINGS_OF_ONE_ADDRESS),
)
async def test_another_spelling_of_a_taken_email_conflicts(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    created = await create_user(client, email=first)
    duplicate = await client.post("/api/v1/users", json=user_payload(email=second))
    assert duplicate.status_code == 409, duplicate.text
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert created["email"] in duplicate.json()["detail"]
    other = await create_user(client)
    patched = await client.patch(f"/api/v1/users/{other['id']}", json={"email": second})
    assert patched.status_code == 409, patched.text
    assert patched.headers["content-type"] == "application/problem+json"


async def test_the_stored_form_is_returned(client: httpx.AsyncClient) -> None:
    created = await create_user(client, email=" Jose\u0301@XN--R8JZ45G.JP ")
    assert created["email"] == "jos\u00e9@例え.jp"
    patched = await client.patch(f"/api/v1/users/{created['id']}", json={"email": "A@B.CO"})
    assert patched.json()["email"] == "a@b.co"


REFUSED_EMAILS = {
    "fullwidth-local": "\uff41\uff44\uff41@example.com",
    "fullwidth-domain": "ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    "ligature": "\ufb01nance@example.com",
    "local-65-octets": "a" * 65 + "@example.com",
    "local-66-octets-in-33-chars": "\u00e9" * 33 + "@example.com",
    "quoted-local": '"ada lovelace"@example.com',
    "ip-literal": "ada@[127.0.0.1]",
    "display-name": "Ada <ada@example.com>",
    "nul": "ada\u0000@example.com",
}


@pytest.mark.parametrize("email", list(REFUSED_EMAILS.values()), ids=list(REFUSED_EMAILS))
async def test_refused_email_is_422_problem(client: httpx.AsyncClient, email: str) -> None:
    for response in (
        await client.post("/api/v1/users", json=user_payload(email=email)),
        await client.patch(
            f"/api/v1/users/{(await create_user(client))['id']}", json={"email": email}
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["errors"][0]["loc"] == ["body", "email"]
        assert problem["errors"][0]["msg"].startswith("Value error, value is not a valid email")


async def test_plus_tags_and_dots_are_distinct_addresses(client: httpx.AsyncClient) -> None:
    for email in ("ada@gmail.com", "a.da@gmail.com", "ada+news@gmail.com"):
        await create_user(client, email=email)


async def test_concurrent_creates_of_one_address_make_one_user(
    client: httpx.AsyncClient,
) -> None:
    spellings = ["Ze\u0301@Example.com", "z\u00e9@example.COM", " ZÉ@EXAMPLE.COM"] * 4
    responses = await asyncio.gather(
        *(client.post("/api/v1/users", json=user_payload(email=e)) for e in spellings)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(spellings) - 1), [r.text for r in responses]
    listed = (await client.get("/api/v1/users", params={"per_page": 50})).json()
    assert [u["email"] for u in listed["items"]] == ["z\u00e9@example.com"]
