"""Forged, mangled and replayed cursors on a real server (beyond tests/integration/api and unit).

Signed out-of-range payloads and single-byte tampering are covered in test_forged_cursors.py and
tests/unit/test_pagination.py; these are what those leave out: encodings, sizes, other secrets,
replays across filters, limits and deletions.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest

from floodgate.web.pagination import CursorCodec
from tests.integration.hostile.conftest import Seed
from tests.integration.hostile.raw import assert_sound, exchange, request
from tests.support.server import ServerProcess

M = "/api/v1/messages"
OTHER_SECRET = CursorCodec(b"another deployment's secret, 32+ bytes long")


def _swap_alphabet(cursor: str) -> str:
    return cursor.replace("-", "+").replace("_", "/")


# name -> (cursor from the real one, statuses allowed). Quoted into the query string as given.
MANGLED: dict[str, tuple[Callable[[str], str], set[int]]] = {
    "truncated-by-one": (lambda c: c[:-1], {422}),
    "truncated-to-tag": (lambda c: c[-16:], {422}),
    "doubled": (lambda c: c + c, {422}),
    "padded": (lambda c: c + "=" * (-len(c) % 4), {200, 422}),
    "over-padded": (lambda c: c + "====", {200, 422}),
    "standard-alphabet": (_swap_alphabet, {200, 422}),
    "upper-cased": (str.upper, {422}),
    "with-space": (lambda c: c[:4] + " " + c[4:], {200, 422}),
    "with-nul": (lambda c: c[:4] + "\x00" + c[4:], {422}),
    "with-non-ascii": (lambda c: c[:4] + "é" + c[4:], {422}),
    "with-emoji": (lambda c: "🙂" + c, {422}),
    "long-garbage-4k": (lambda c: "A" * 4096, {422}),
    "long-valid-prefix": (lambda c: c + "A" * 4000, {422}),
    "base64-of-nothing": (lambda c: "", {200}),
    "single-char": (lambda c: "A", {422}),
    "only-padding": (lambda c: "====", {422}),
    "json-not-base64": (lambda c: '[0, 1, "u="]', {422}),
    "other-secret": (
        lambda c: OTHER_SECRET.encode(after=(datetime(2026, 1, 1, tzinfo=UTC), 1), scope=""),
        {422},
    ),
    "base64-of-unsigned-payload": (
        lambda c: base64.urlsafe_b64encode(b'[0, 1, ""]' + b"\x00" * 12).decode(),
        {422},
    ),
}


@pytest.mark.parametrize(("mangle", "allowed"), list(MANGLED.values()), ids=list(MANGLED))
def test_mangled_cursor_is_refused_soundly(
    server: ServerProcess, seed: Seed, mangle: Callable[[str], str], allowed: set[int]
) -> None:
    cursor = quote(mangle(seed.cursor), safe="")
    target = f"{M}?user_id={seed.user_id}&limit=1&cursor={cursor}"
    ex = exchange(server.port, request("GET", target), expect=1)
    response = ex.responses[0]
    assert_sound(response)
    assert response.status in allowed, (response, response.body[:300])
    if response.status == 422:
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]  # type: ignore[index]


REPLAYS = {
    "without-the-filter": f"{M}?limit=1",
    "with-another-user": f"{M}?user_id=999999&limit=1",
    "with-the-filter-twice": f"{M}?user_id={{user}}&user_id={{user}}&limit=1",
    "with-offset-params-too": f"{M}?user_id={{user}}&page=2&per_page=1",
    "on-the-users-list": "/api/v1/users?per_page=1",
}


@pytest.mark.parametrize("target", list(REPLAYS.values()), ids=list(REPLAYS))
def test_cursor_replayed_elsewhere_is_sound(server: ServerProcess, seed: Seed, target: str) -> None:
    path = target.format(user=seed.user_id) + f"&cursor={seed.cursor}"
    ex = exchange(server.port, request("GET", path), expect=1)
    response = ex.responses[0]
    assert_sound(response)
    assert response.status in (200, 422), response


def test_replayed_cursor_gives_the_same_page_and_survives_other_limits(
    server: ServerProcess, seed: Seed
) -> None:
    with httpx.Client(base_url=server.url) as client:
        params = {"user_id": seed.user_id, "limit": 1, "cursor": seed.cursor}
        first = client.get(M, params=params)
        again = client.get(M, params=params)
        assert first.status_code == again.status_code == 200
        assert first.json()["items"] == again.json()["items"]
        wider = client.get(M, params={**params, "limit": 100})
        assert wider.status_code == 200
        assert wider.json()["items"][0] == first.json()["items"][0]


def test_cursor_outlives_the_row_it_points_past(server: ServerProcess, seed: Seed) -> None:
    # A cursor names a position, not a row: deleting its anchor must not break the walk.
    with httpx.Client(base_url=server.url) as client:
        created = [
            client.post(M, json={"user_id": seed.user_id, "body": f"gone {i}"}).json()["id"]
            for i in range(3)
        ]
        page = client.get(M, params={"user_id": seed.user_id, "limit": 1})
        cursor = page.json()["meta"]["next_cursor"]
        anchor = page.json()["items"][0]["id"]
        assert client.delete(f"{M}/{anchor}").status_code == 204
        after = client.get(M, params={"user_id": seed.user_id, "limit": 100, "cursor": cursor})
        assert after.status_code == 200, after.text
        assert anchor not in [m["id"] for m in after.json()["items"]]
        for message_id in created:
            client.delete(f"{M}/{message_id}")
        # The anchor is the oldest seed message or one of ours, never the last seed message,
        # which other cases patch.
        assert anchor != seed.message_ids[-1]
