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


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/users", "GET, HEAD, POST, OPTIONS"),
        ("/api/v1/users/1", "GET, HEAD, PATCH, DELETE, OPTIONS"),
        ("/api/v1/messages", "GET, HEAD, POST, OPTIONS"),
        ("/api/v1/messages/abc", "GET, HEAD, PATCH, DELETE, OPTIONS"),
    ],
)
async def test_405_and_options_list_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allow: str
) -> None:
    for method in ("PUT", "TRACE", "QUERY"):
        response = await client.request(method, path)
        assert_problem(response, 405)
        assert response.headers["allow"] == allow
    options = await client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == allow
    assert options.content == b""


async def test_options_on_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.options("/api/v1/nope"), 404)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        pytest.param(None, {}, id="no-body"),
        pytest.param(b"", {"content-length": "0"}, id="empty-body"),
        pytest.param(b"name=x", {"content-type": "application/x-www-form-urlencoded"}, id="form"),
        pytest.param(b"{}", {"content-type": "text/plain"}, id="text"),
        pytest.param(b"{}", JSON, id="json"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/users/1", "/api/v1/messages/1"])
async def test_a_method_the_path_does_not_serve_is_405_before_the_media_type(
    client: httpx.AsyncClient, path: str, content: bytes | None, headers: dict[str, str]
) -> None:
    response = await client.put(path, content=content, headers=headers)
    assert_problem(response, 405)
    assert "PUT" not in response.headers["allow"]


async def test_a_served_method_with_a_non_json_body_is_still_415(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client)
    response = await client.patch(
        f"/api/v1/users/{user['id']}", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415)


async def test_unknown_path_with_a_non_json_body_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/nope", content=b"x", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 404)


async def test_head_is_get_without_the_body(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    for path in (
        "/api/v1/users",
        f"/api/v1/users/{user['id']}",
        "/api/v1/messages",
        "/api/v1/messages?limit=5",
        "/healthz",
        "/openapi.json",
    ):
        get = await client.get(path)
        head = await client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == str(len(get.content)), path
    missing = await client.head("/api/v1/users/999999")
    assert missing.status_code == 404
    assert missing.content == b""
    assert (await client.head("/api/v1/users/0")).status_code == 422


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8443", "127.0.0.1@evil.example", "user:pw@evil.example"],
)
@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/api/v1/users/", "/api/v1/users"),
        ("/api/v1/users/?page=2&name=a%20b", "/api/v1/users?page=2&name=a%20b"),
        ("/api/v1/messages/7/", "/api/v1/messages/7"),
    ],
)
async def test_trailing_slash_redirect_is_relative_whatever_the_host(
    client: httpx.AsyncClient, host: str, path: str, location: str
) -> None:
    response = await client.get(path, headers={"host": host})
    assert response.status_code == 307
    assert response.headers["location"] == location
    assert "evil" not in response.headers["location"]


@pytest.mark.parametrize("path", ["//evil.example/", "//evil.example", "/\\evil.example/"])
async def test_no_redirect_to_another_host(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "location" not in response.headers
