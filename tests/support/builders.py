"""Small builders for API tests: random, valid payloads and helpers that create rows via the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def random_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def user_payload(**overrides: Any) -> dict[str, Any]:
    return {"name": f"User {uuid.uuid4().hex[:6]}", "email": random_email(), **overrides}


async def create_user(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/users", json=user_payload(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_message(
    client: httpx.AsyncClient, user_id: int, body: str = "hello"
) -> dict[str, Any]:
    response = await client.post("/api/v1/messages", json={"user_id": user_id, "body": body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
