"""Every kind of bad input gets the right 4xx as application/problem+json, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.support.builders import create_user, user_payload

JSON = {"content-type": "application/json"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        pytest.param(b'{"name": "x", "email":', 422, None, id="malformed-json"),
        pytest.param(b"[]", 422, None, id="array-not-object"),
        pytest.param(b'{"name": 5, "email": "a@b.co"}', 422, "name", id="wrong-type"),
        pytest.param(b'{"name": "x", "email": "not-an-email"}', 422, "email", id="bad-email"),
        pytest.param(
            b'{"name": "x", "email": "a@b.co", "admin": true}', 422, "admin", id="unknown-field"
        ),
        pytest.param(b'{"name": "", "email": "a@b.co"}', 422, "name", id="empty-name"),
        pytest.param(b'{"name": "a\\u0000b", "email": "a@b.co"}', 422, "name", id="nul-byte"),
        pytest.param(b'{"name": "\\ud800", "email": "a@b.co"}', 422, None, id="lone-surrogate"),
        pytest.param(b'{"email": "a@b.co"}', 422, "name", id="missing-field"),
    ],
)
async def test_bad_user_bodies(
    client: httpx.AsyncClient, content: bytes, status: int, field: str | None
) -> None:
    body = assert_problem(await client.post("/api/v1/users", content=content, headers=JSON), status)
    if field is not None:
        assert any(err["loc"][-1] == field for err in body["errors"]), body


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = {"user_id": 1, "body": "x" * 200_000}
    assert_problem(await client.post("/api/v1/messages", json=big), 413)


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 4096

    response = await client.post("/api/v1/messages", content=chunks(), headers=JSON)
    assert_problem(response, 413)


async def test_message_body_over_max_length_is_422(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    response = await client.post(
        "/api/v1/messages", json={"user_id": user["id"], "body": "x" * 4001}
    )
    assert_problem(response, 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_non_json_media_type_is_415(client: httpx.AsyncClient, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/api/v1/users", content=b'{"name":"a"}', headers=headers)
    assert_problem(response, 415)


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users",
        content=httpx.Request("POST", "/", json=user_payload()).content,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/users/0", 422),
        ("/api/v1/users/-1", 422),
        ("/api/v1/users/abc", 422),
        ("/api/v1/users/99999999999999999999999", 422),
        ("/api/v1/messages/9223372036854775807", 404),
        ("/api/v1/messages/9223372036854775808", 422),
        ("/api/v1/nope", 404),
    ],
)
async def test_bad_paths(client: httpx.AsyncClient, path: str, status: int) -> None:
    assert_problem(await client.get(path), status)


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.put("/api/v1/users", json={}), 405)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-3"}, "page"),
        ({"page": "99999999999999999999999999"}, "page"),
        ({"page": "1e3"}, "page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "101"}, "per_page"),
        ({"limit": "101"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "WzEsMiwidT0iXQ"}, "cursor"),
        ({"cursor": "x" * 600}, "cursor"),
        ({"user_id": "abc"}, "user_id"),
        ({"page": "2", "cursor": "abc"}, "cursor"),
        ({"per_page": "2", "limit": "3"}, "limit"),
    ],
)
async def test_bad_message_list_params(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    body = assert_problem(await client.get("/api/v1/messages", params=params), 422)
    assert any(err["loc"][-1] == field for err in body["errors"]), body


@pytest.mark.parametrize("name", ["%", "_", "%%%", "\\", "' OR 1=1 --", "a\x00b", "x" * 101])
async def test_search_metacharacters_never_fail(client: httpx.AsyncClient, name: str) -> None:
    await create_user(client, name="plain")
    response = await client.get("/api/v1/users", params={"name": name})
    if "\x00" in name or len(name) > 100:
        assert_problem(response, 422)
    else:
        assert response.status_code == 200
        assert response.json()["items"] == []


async def test_huge_page_beyond_data_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/messages", params={"page": 10_000_000, "per_page": 100})
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_empty_cursor_means_first_keyset_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/messages", params={"cursor": ""})
    assert response.status_code == 200
    assert response.json()["meta"] == {"next_cursor": None, "limit": 10}
