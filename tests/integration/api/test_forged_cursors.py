"""Cursors signed with the (public) development secret but holding out-of-range values: a 422
through the API, like a tampered cursor, never a 500 from `datetime` or the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from tests.support.builders import create_message, create_user

from floodgate.web.pagination import CursorCodec


def _secret(app: FastAPI) -> bytes:
    return app.state.settings.cursor_secret.get_secret_value().encode()  # type: ignore[no-any-return]


def _sign(secret: bytes, payload: bytes) -> str:
    # CursorCodec's format, for payloads its encode() cannot produce: JSON, then a 12-byte tag.
    tag = hmac.new(secret, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


FORGED = {
    "after-datetime-max": b'[253402300800000000, 1, "u="]',
    "before-datetime-min": b'[-62135596800000001, 1, "u="]',
    "huge-timestamp": b'[99999999999999999999, 1, "u="]',
    "id-2**63": b'[0, 9223372036854775808, "u="]',
    "id-2**64-1": b'[0, 18446744073709551615, "u="]',
    "negative-id": b'[0, -5, "u="]',
    "zero-id": b'[0, 0, "u="]',
    "bool-timestamp": b'[true, 1, "u="]',
    "float-timestamp": b'[1.5, 1, "u="]',
    "float-overflow-id": b'[0, 1e400, "u="]',
    "nan": b'[NaN, 1, "u="]',
    "infinity": b'[0, Infinity, "u="]',
    "string-timestamp": b'["0", 1, "u="]',
    "extra-field": b'[0, 1, "u=", "x"]',
    "missing-field": b"[0, 1]",
    "object": b'{"a": 0, "b": 1, "u=": 2}',
    "string": b'"abc"',
    "null-scope": b"[0, 1, null]",
}


@pytest.mark.parametrize("name", sorted(FORGED))
async def test_signed_out_of_range_cursor_is_422(
    app: FastAPI, client: httpx.AsyncClient, name: str
) -> None:
    user = await create_user(client)
    await create_message(client, user["id"], "m")
    cursor = _sign(_secret(app), FORGED[name])
    response = await client.get("/api/v1/messages", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"][0]["loc"] == ["query", "cursor"]


async def test_codec_minted_extremes_are_served(app: FastAPI, client: httpx.AsyncClient) -> None:
    # The edges of what decode accepts reach the database and come back as ordinary pages.
    codec = CursorCodec(_secret(app))
    user = await create_user(client)
    await create_message(client, user["id"], "m")
    for after in (
        (datetime.min.replace(tzinfo=UTC), 1),
        (datetime.max.replace(tzinfo=UTC), 2**63 - 1),
        (datetime(2026, 1, 1, tzinfo=UTC), 2**63 - 1),
    ):
        cursor = codec.encode(after=after, scope="u=")
        response = await client.get("/api/v1/messages", params={"cursor": cursor})
        assert response.status_code == 200, (after, response.text)
