"""Request framing on a real server, with raw sockets: ambiguous bodies, odd lines, odd targets.

A framing ambiguity (two lengths, a length and chunked, a broken chunk) must be refused and the
connection closed: reading either way could let a second, smuggled request through.
"""

from __future__ import annotations

import pytest

from tests.integration.hostile.raw import assert_sound, exchange, request
from tests.support.server import ServerProcess

USERS = b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
SMUGGLED = b"GET /api/v1/users/999999 HTTP/1.1\r\nHost: x\r\n\r\n"

# Refused by the HTTP parser: one 400, then the connection is closed (nothing smuggled through).
AMBIGUOUS = {
    "cl-and-te": USERS + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cl-te-smuggle": USERS
    + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "te-cl-smuggle": USERS
    + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2e\r\n"
    + SMUGGLED
    + b"\r\n0\r\n\r\n",
    "te-space-before-colon": USERS + b"Transfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n{}",
    "duplicate-cl-equal": USERS + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "duplicate-cl-differ": USERS + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}" + SMUGGLED,
    "cl-list": USERS + b"Content-Length: 2, 2\r\n\r\n{}",
    "cl-negative": USERS + b"Content-Length: -1\r\n\r\n{}",
    "cl-plus-sign": USERS + b"Content-Length: +2\r\n\r\n{}",
    "cl-hex": USERS + b"Content-Length: 0x2\r\n\r\n{}",
    "cl-huge": USERS + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    "te-identity": USERS + b"Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
    "te-chunked-twice": USERS
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "chunk-size-not-hex": USERS + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "chunk-size-overflow": USERS
    + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    "chunk-size-negative": USERS + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
    "chunk-longer-than-data": USERS + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}\r\n0\r\n\r\n",
    "chunk-missing-crlf": USERS + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}0\r\n\r\n",
    "chunk-trailer-smuggles-length": USERS
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 999\r\n\r\n",
    "bare-lf-lines": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "bare-cr-lines": b"GET /healthz HTTP/1.1\rHost: x\r\r",
    "lf-in-body-framing": USERS + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n",
    "obs-fold-header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "header-without-colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n",
    "space-before-colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
    "nul-in-header-value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "ctl-in-header-value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "del-in-header-value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: \x7f\r\n\r\n",
    "nul-in-header-name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n",
    "nul-in-path": b"GET /api/v1/users\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl-in-path": b"GET /api/v1/us\x01ers HTTP/1.1\r\nHost: x\r\n\r\n",
    "del-in-path": b"GET /api/v1/users\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab-in-path": b"GET /api/v1/\tusers HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-query": b"GET /api/v1/users?name=a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw-utf8-in-path": "GET /api/v1/users/١٢ HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "raw-high-byte-in-path": b"GET /api/v1/users/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "overlong-method": b"A" * 10_000 + b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown-method": b"BREW /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n",
    "lower-case-method": b"get /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n",
    "authority-form": b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "tls-client-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 100,
    "garbage-line": b"\x00\x01\x02\x03\r\n\r\n",
    "bad-version": b"GET /healthz HTTP/1.x\r\nHost: x\r\n\r\n",
    "missing-target": b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
    "error-then-pipelined": b"GET /x\x00 HTTP/1.1\r\nHost: x\r\n\r\n" + request("GET", "/healthz"),
}


@pytest.mark.parametrize("payload", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
def test_ambiguous_or_malformed_framing_is_refused_and_closed(
    server: ServerProcess, payload: bytes
) -> None:
    ex = exchange(server.port, payload, timeout_s=5)
    assert [r.status for r in ex.responses] == [400], ex
    assert_sound(ex.responses[0])
    assert ex.closed, "a refused framing must close the connection"


# Odd but unambiguous requests: answered normally, or refused with a problem; never a 5xx.
ODD = {
    "http10-without-host": (b"GET /api/v1/users HTTP/1.0\r\n\r\n", {200}),
    "http11-without-host": (b"GET /api/v1/users HTTP/1.1\r\n\r\n", {200, 400}),
    "two-host-headers": (b"GET /api/v1/users HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {200, 400}),
    "empty-host": (b"GET /api/v1/users HTTP/1.1\r\nHost:\r\n\r\n", {200, 400}),
    "absolute-form": (b"GET http://evil.example/api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n", {200}),
    "absolute-form-https": (
        b"GET https://evil.example:1/api/v1/users/999999 HTTP/1.1\r\nHost: x\r\n\r\n",
        {404},
    ),
    "asterisk-form-options": (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", {200, 204, 400, 404}),
    "http2-version-line": (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", {200, 400, 505}),
    "http09-request-line": (b"GET /healthz\r\n\r\n", {200, 400}),
    "chunk-extension": (
        USERS + b"Transfer-Encoding: chunked\r\n\r\n2;name=value\r\n{}\r\n0\r\n\r\n",
        {422},
    ),
    "chunked-one-byte-chunks": (
        USERS
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in b'{"name":"c","email":"x"}')
        + b"0\r\n\r\n",
        {422},
    ),
    "chunked-with-trailer": (
        USERS + b"Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n",
        {422},
    ),
    "chunked-zero-only": (USERS + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {422}),
    "high-bytes-in-header-value": (
        b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n",
        {200},
    ),
    "very-long-header-name": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X" * 3000 + b": 1\r\n\r\n",
        {200, 431},
    ),
    "expect-100-continue": (
        request(
            "POST",
            "/api/v1/users",
            headers={"Content-Type": "application/json", "Expect": "100-continue"},
            body=b'{"name":"e","email":"expect@example.com"}',
        ),
        {100, 201, 409},
    ),
    "expect-unknown": (
        request(
            "POST",
            "/api/v1/users",
            headers={"Content-Type": "application/json", "Expect": "teapot"},
            body=b"{}",
        ),
        {417, 422},
    ),
    "upgrade-h2c": (
        request(
            "GET",
            "/healthz",
            headers={"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c"},
        ),
        {200},
    ),
    "connection-close": (request("GET", "/healthz", headers={"Connection": "close"}), {200}),
    "connection-garbage": (request("GET", "/healthz", headers={"Connection": "\x1f"}), {200, 400}),
}


@pytest.mark.parametrize(("payload", "allowed"), list(ODD.values()), ids=list(ODD))
def test_odd_requests_are_answered_soundly(
    server: ServerProcess, payload: bytes, allowed: set[int]
) -> None:
    ex = exchange(server.port, payload, expect=1, timeout_s=5)
    assert ex.responses, ex
    for response in ex.responses:
        assert_sound(response)
    assert {r.status for r in ex.responses} <= allowed, ex


def test_websocket_upgrade_on_an_http_route_is_refused_soundly(server: ServerProcess) -> None:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    ex = exchange(server.port, request("GET", "/api/v1/users", headers=headers), expect=1)
    assert ex.responses, ex
    response = ex.responses[0]
    assert response.status < 500
    if response.status != 200:
        # The app serves no websockets: a refusal is fine, but as a problem, like every 4xx.
        assert_sound(response)


def test_pipelined_requests_in_one_packet_are_answered_in_order(server: ServerProcess) -> None:
    body = b'{"name": "p", "email": "pipelined@example.com"}'
    payload = (
        request("GET", "/healthz")
        + request("POST", "/api/v1/users", headers={"Content-Type": "application/json"}, body=body)
        + request("GET", "/api/v1/users/999999")
        + request("POST", "/api/v1/users", headers={"Content-Type": "application/json"}, body=b"{")
        + request("GET", "/api/v1/users", headers={"Content-Type": "application/json"}, body=b"x")
        + request("GET", "/healthz")
    )
    ex = exchange(server.port, payload, expect=6)
    assert [r.status for r in ex.responses] == [200, 201, 404, 422, 200, 200], ex
    for response in ex.responses:
        assert_sound(response)
    assert not ex.closed


def test_pipelined_head_requests_carry_no_body(server: ServerProcess) -> None:
    ex = exchange(
        server.port, request("HEAD", "/healthz") * 2 + request("HEAD", "/nope"), expect=3, head=True
    )
    assert len(ex.responses) == 3, ex
    assert all(r.status < 500 for r in ex.responses)


@pytest.mark.parametrize(
    "target",
    ["http://evil.example/api/v1/users/", "//evil.example/api/v1/users/", "/api/v1/users/"],
)
def test_redirects_never_name_another_host(server: ServerProcess, target: str) -> None:
    headers = {"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"}
    ex = exchange(server.port, request("GET", target, headers=headers), expect=1)
    response = ex.responses[0]
    assert_sound(response)
    location = response.headers.get("location", "")
    assert "evil" not in location, response
    assert not location.startswith("//"), response
