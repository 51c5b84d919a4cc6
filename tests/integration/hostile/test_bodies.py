"""Hostile request bodies on a real server: JSON edge cases, encodings, media types, emptiness."""

from __future__ import annotations

import json

import pytest

from tests.integration.hostile.conftest import Seed
from tests.integration.hostile.raw import assert_sound, exchange, request
from tests.support.server import ServerProcess

JSON = "application/json"


def _user(n: str) -> bytes:
    return json.dumps({"name": "b", "email": f"body-{n}@example.com"}).encode()


# name -> ("[METHOD ]path", content type or None, body, statuses allowed); POST by default.
BODIES: dict[str, tuple[str, str | None, bytes, set[int]]] = {
    "empty-with-length-0": ("/api/v1/users", JSON, b"", {422}),
    "whitespace-only": ("/api/v1/users", JSON, b" \r\n\t ", {400, 422}),
    "json-null": ("/api/v1/users", JSON, b"null", {422}),
    "json-array": ("/api/v1/users", JSON, b"[]", {422}),
    "json-string": ("/api/v1/users", JSON, b'"x"', {422}),
    "json-number": ("/api/v1/users", JSON, b"1", {422}),
    "json-true": ("/api/v1/users", JSON, b"true", {422}),
    "truncated": ("/api/v1/users", JSON, b'{"name": "x", "email":', {400, 422}),
    "trailing-garbage": ("/api/v1/users", JSON, _user("tg") + b"xyz", {400, 422}),
    "two-documents": ("/api/v1/users", JSON, _user("2d") + _user("2d"), {400, 422}),
    "comments": ("/api/v1/users", JSON, b'{"name": "a", /* c */ "email": "c@x.co"}', {400, 422}),
    "single-quotes": ("/api/v1/users", JSON, b"{'name': 'a', 'email': 'q@x.co'}", {400, 422}),
    # Duplicate keys: the last one wins (Python's json); never an error, never a 5xx.
    "duplicate-keys": (
        "/api/v1/users",
        JSON,
        b'{"name": "first", "name": "last", "email": "dup-keys@example.com"}',
        {201, 409},
    ),
    "duplicate-email-keys": (
        "/api/v1/users",
        JSON,
        b'{"name": "d", "email": "not an email", "email": "dup-email@example.com"}',
        {201, 409},
    ),
    "deep-array-10000": ("/api/v1/users", JSON, b"[" * 10_000 + b"]" * 10_000, {400, 422}),
    "deep-object-10000": ("/api/v1/users", JSON, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, {400}),
    "deep-unclosed-10000": ("/api/v1/users", JSON, b"[" * 10_000, {400, 422}),
    "deep-inside-a-field": (
        "/api/v1/users",
        JSON,
        b'{"name": ' + b"[" * 5_000 + b"]" * 5_000 + b', "email": "a@b.co"}',
        {400, 422},
    ),
    "number-5000-digits": ("/api/v1/users", JSON, b'{"name": ' + b"9" * 5_000 + b"}", {400, 422}),
    "user-id-5000-digits": (
        "/api/v1/messages",
        JSON,
        b'{"user_id": ' + b"9" * 5_000 + b', "body": "x"}',
        {400, 422},
    ),
    "user-id-2**63": (
        "/api/v1/messages",
        JSON,
        b'{"user_id": 9223372036854775808, "body": "x"}',
        {422},
    ),
    "user-id-2**64": (
        "/api/v1/messages",
        JSON,
        b'{"user_id": 18446744073709551616, "body": "x"}',
        {422},
    ),
    "user-id-negative": ("/api/v1/messages", JSON, b'{"user_id": -1, "body": "x"}', {422}),
    "user-id-1e999": ("/api/v1/messages", JSON, b'{"user_id": 1e999, "body": "x"}', {422}),
    "user-id-1e18-float": ("/api/v1/messages", JSON, b'{"user_id": 1e18, "body": "x"}', {422}),
    "user-id-fraction": ("/api/v1/messages", JSON, b'{"user_id": 1.5, "body": "x"}', {422}),
    "user-id-NaN": ("/api/v1/messages", JSON, b'{"user_id": NaN, "body": "x"}', {422}),
    "user-id-Infinity": ("/api/v1/messages", JSON, b'{"user_id": Infinity, "body": "x"}', {422}),
    "user-id--Infinity": ("/api/v1/messages", JSON, b'{"user_id": -Infinity, "body": "x"}', {422}),
    "user-id-string": ("/api/v1/messages", JSON, b'{"user_id": "1", "body": "x"}', {201, 422}),
    "user-id-object": ("/api/v1/messages", JSON, b'{"user_id": {}, "body": "x"}', {422}),
    "name-NaN": ("/api/v1/users", JSON, b'{"name": NaN, "email": "nan@x.co"}', {422}),
    "lone-surrogate-escape": (
        "/api/v1/users",
        JSON,
        b'{"name": "\\udc00", "email": "ls@x.co"}',
        {422},
    ),
    "nul-escape-in-name": (
        "/api/v1/users",
        JSON,
        b'{"name": "a\\u0000", "email": "nul@x.co"}',
        {422},
    ),
    "nul-escape-in-email": (
        "/api/v1/users",
        JSON,
        b'{"name": "a", "email": "a\\u0000@x.co"}',
        {422},
    ),
    "raw-control-char-in-string": (
        "/api/v1/users",
        JSON,
        b'{"name": "a\x01", "email": "cc@x.co"}',
        {400, 422},
    ),
    "invalid-utf8": ("/api/v1/users", JSON, b'{"name": "\xff\xfe", "email": "a@b.co"}', {400, 422}),
    "overlong-utf8": (
        "/api/v1/users",
        JSON,
        b'{"name": "\xc0\xaf", "email": "a@b.co"}',
        {400, 422},
    ),
    "utf8-encoded-surrogate": (
        "/api/v1/users",
        JSON,
        b'{"name": "\xed\xa0\x80", "email": "a@b.co"}',
        {400, 422},
    ),
    # UTF-16/32 and BOMs: JSON must be UTF-8 (RFC 8259); Python's json detects them and reads the
    # same document, so they are served like it. Either way: sound.
    "utf-16-with-bom": (
        "/api/v1/users",
        JSON,
        _user("u16").decode().encode("utf-16"),
        {201, 400, 409, 415, 422},
    ),
    "utf-16-le-no-bom": (
        "/api/v1/users",
        JSON,
        _user("u16le").decode().encode("utf-16-le"),
        {201, 400, 409, 415, 422},
    ),
    "utf-32-with-bom": (
        "/api/v1/users",
        JSON,
        _user("u32").decode().encode("utf-32"),
        {201, 400, 409, 415, 422},
    ),
    "utf-8-bom": ("/api/v1/users", JSON, b"\xef\xbb\xbf" + _user("bom"), {201, 400, 409, 422}),
    "charset-utf-8": ("/api/v1/users", "application/json; charset=utf-8", _user("cs8"), {201, 409}),
    "charset-UTF8-quoted": (
        "/api/v1/users",
        'application/json; charset="UTF-8"',
        _user("csq"),
        {201, 409},
    ),
    "charset-latin-1": (
        "/api/v1/users",
        "application/json; charset=latin-1",
        '{"name": "é", "email": "latin@x.co"}'.encode("latin-1"),
        {400, 415, 422},
    ),
    "charset-utf-16-on-utf-8": (
        "/api/v1/users",
        "application/json; charset=utf-16",
        _user("cs16"),
        {201, 400, 409, 415, 422},
    ),
    "charset-bogus": (
        "/api/v1/users",
        "application/json; charset=bogus",
        _user("csb"),
        {201, 409, 415},
    ),
    "media-type-upper-case": ("/api/v1/users", "APPLICATION/JSON", _user("upper"), {201, 409}),
    "media-type-json-suffix": (
        "/api/v1/users",
        "application/merge-patch+json",
        _user("sfx"),
        {201, 409, 415},
    ),
    "media-type-text-plain": ("/api/v1/users", "text/plain", _user("tp"), {415}),
    "media-type-missing": ("/api/v1/users", None, _user("none"), {415}),
    "media-type-form": (
        "/api/v1/users",
        "application/x-www-form-urlencoded",
        b"name=a&email=a@b.co",
        {415},
    ),
    "media-type-multipart": (
        "/api/v1/users",
        "multipart/form-data; boundary=x",
        b"--x\r\n\r\n--x--",
        {415},
    ),
    "media-type-garbage": ("/api/v1/users", ";;;===", _user("garbage"), {415}),
    "media-type-json-with-params": (
        "/api/v1/users",
        "application/json; a=b; c",
        _user("params"),
        {201, 409, 415},
    ),
    "media-type-applicationjson": ("/api/v1/users", "applicationjson", _user("nojoin"), {415}),
    "media-type-xml": ("/api/v1/users", "application/xml", b"<user/>", {415}),
    "string-60k": (
        "/api/v1/users",
        JSON,
        json.dumps({"name": "x" * 60_000, "email": "a@b.co"}).encode(),
        {422},
    ),
    "body-over-limit": ("/api/v1/users", JSON, b" " * (65 * 1024), {413}),
    "patch-empty-object": ("PATCH /api/v1/users/{user}", JSON, b"{}", {200}),
    "patch-null-email": ("PATCH /api/v1/users/{user}", JSON, b'{"email": null}', {422}),
    "patch-array": ("PATCH /api/v1/users/{user}", JSON, b"[]", {422}),
    "patch-message-body-object": ("PATCH /api/v1/messages/{message}", JSON, b'{"body": {}}', {422}),
    "delete-with-garbage-body": ("DELETE /api/v1/users/999999", JSON, b"{garbage", {404}),
    "get-with-garbage-body": ("GET /api/v1/users", JSON, b"{garbage", {200}),
}


@pytest.mark.parametrize(
    ("target", "ctype", "body", "allowed"), list(BODIES.values()), ids=list(BODIES)
)
def test_hostile_body_is_answered_soundly(
    server: ServerProcess,
    seed: Seed,
    target: str,
    ctype: str | None,
    body: bytes,
    allowed: set[int],
) -> None:
    method, _, path = target.rpartition(" ")
    path = path.format(user=seed.user_id, message=seed.message_ids[-1])
    headers = {"Content-Type": ctype} if ctype is not None else {}
    headers["Content-Length"] = str(len(body))
    ex = exchange(
        server.port, request(method or "POST", path, headers=headers, body=body), expect=1
    )
    assert ex.responses, ex
    response = ex.responses[-1]
    assert_sound(response)
    assert response.status in allowed, (response, response.body[:300])


def test_a_boolean_user_id_is_not_an_id(server: ServerProcess) -> None:
    # JSON `true` is not the integer 1, but pydantic's lax mode reads it as 1.
    body = b'{"user_id": true, "body": "x"}'
    ex = exchange(
        server.port,
        request("POST", "/api/v1/messages", headers={"Content-Type": JSON}, body=body),
        expect=1,
    )
    assert_sound(ex.responses[0])
    assert ex.responses[0].status == 422


def test_two_content_types_are_read_alike(server: ServerProcess) -> None:
    # The body guard and the JSON reader must decide from the same Content-Type field.
    ex = exchange(
        server.port,
        request(
            "POST",
            "/api/v1/users",
            headers={"Content-Type": "text/plain", "content-type": JSON},
            body=_user("two-ct"),
        ),
        expect=1,
    )
    response = ex.responses[0]
    assert_sound(response)
    assert response.status == 400
