"""Hostile request targets and headers on a real server: encodings, ids, segments, parameters."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.hostile.conftest import Seed
from tests.integration.hostile.raw import assert_sound, exchange, request
from tests.support.server import ServerProcess

U = "/api/v1/users"
M = "/api/v1/messages"

# request target -> statuses allowed (GET).
TARGETS: dict[str, tuple[str, set[int]]] = {
    "pct-nul-in-id": (f"{U}/%00", {422}),
    "pct-nul-after-id": (f"{U}/1%00", {422}),
    "pct-invalid-utf8-id": (f"{U}/%ff%fe", {422}),
    "pct-overlong-utf8-id": (f"{U}/%c0%af", {422}),
    "pct-surrogate-id": (f"{U}/%ed%a0%80", {422}),
    "pct-arabic-digits-id": (f"{U}/%D9%A1%D9%A2", {422}),
    "pct-fullwidth-digit-id": (f"{U}/%EF%BC%91", {422}),
    "pct-space-id": (f"{U}/%201", {200, 404, 422}),  # lax integer parsing: an alias of 1
    "pct-newline-id": (f"{U}/1%0d%0aX-Injected:%201", {422}),
    "pct-encoded-slash": (f"{U}/1%2f2", {404, 422}),
    "pct-bad-escape-id": (f"{U}/%zz", {404, 422}),
    "id-zero": (f"{U}/0", {422}),
    "id-negative": (f"{U}/-1", {422}),
    "id-plus": (f"{U}/+1", {200, 404, 422}),
    "id-leading-zeros": (f"{U}/0000000000000000000000001", {200, 404, 422}),
    "id-underscore": (f"{U}/1_0", {200, 404, 422}),  # lax: int("1_0") == 10
    "id-float": (f"{U}/1.0", {200, 404, 422}),
    "id-exponent": (f"{U}/1e3", {422}),
    "id-hex": (f"{U}/0x10", {422}),
    "id-2**63-1": (f"{U}/9223372036854775807", {404}),
    "id-2**63": (f"{U}/9223372036854775808", {422}),
    "id-2**64": (f"{U}/18446744073709551616", {422}),
    "id-400-digits": (f"{U}/{'9' * 400}", {422}),
    "id-5000-digits": (f"{U}/{'9' * 5000}", {422, 431}),
    "id-infinity": (f"{U}/Infinity", {422}),
    "id-nan": (f"{U}/NaN", {422}),
    "message-id-2**63": (f"{M}/9223372036854775808", {422}),
    "dotdot-segment": (f"{U}/../messages", {200, 404}),
    "dotdot-escape-root": ("/api/v1/../../../../etc/passwd", {404}),
    "pct-dotdot": (f"{U}/%2e%2e/messages", {404}),
    "pct-dotdot-upper": (f"{U}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", {404, 422}),
    "dot-segment": (f"{U}/./1", {200, 404}),
    "backslash-dotdot": (f"{U}/..%5c..%5cetc", {404, 422}),
    "double-slash": ("//api//v1//users", {404}),
    "trailing-slash-id": (f"{U}/1/", {200, 307, 404}),
    "semicolon-param": (f"{U}/1;x=y", {404, 422}),
    "fragment": (f"{U}#frag", {200}),
    "empty-query": (f"{U}?", {200}),
    "bare-ampersands": (f"{U}?&&&=&", {200}),
    "duplicate-page": (f"{U}?page=1&page=2", {200, 422}),
    "duplicate-per-page-conflict": (f"{U}?per_page=5&per_page=x", {200, 422}),
    "duplicate-limit": (f"{M}?limit=1&limit=500", {200, 422}),
    "duplicate-cursor": (f"{M}?cursor=a&cursor=b", {422}),
    "duplicate-user-id": (f"{M}?user_id=1&user_id=2&limit=1", {200, 422}),
    "page-zero": (f"{U}?page=0", {422}),
    "page-huge": (f"{U}?page=99999999999999999999999", {422}),
    "page-2**63": (f"{U}?page=9223372036854775808", {422}),
    "per-page-huge": (f"{U}?per_page=99999999999999999999", {422}),
    "limit-negative": (f"{M}?limit=-1", {422}),
    "limit-float": (f"{M}?limit=1.5", {422}),
    "user-id-query-2**63": (f"{M}?user_id=9223372036854775808", {422}),
    "user-id-query-nul": (f"{M}?user_id=%00", {422}),
    "name-pct-nul": (f"{U}?name=%00", {422}),
    "name-pct-invalid-utf8": (f"{U}?name=%ff", {200, 422}),
    "name-pct-surrogate": (f"{U}?name=%ed%a0%80", {200, 422}),
    "name-bad-escape": (f"{U}?name=%zz", {200, 422}),
    "name-like-wildcards": (f"{U}?name=%25%5f%5c", {200}),
    "name-sql": (f"{U}?name=%27%3b%20DROP%20TABLE%20users%3b--", {200}),
    "name-101-chars": (f"{U}?name={'a' * 101}", {422}),
    "name-plus-as-space": (f"{U}?name=a+b", {200}),
    "unknown-parameter": (f"{U}?admin=true&debug=1", {200}),
    "parameter-without-value": (f"{U}?page", {200, 422}),
    "pct-encoded-parameter-name": (f"{U}?%70age=2", {200}),
    "pct-nul-in-parameter-name": (f"{U}?%00=1", {200, 422}),
    "openapi": ("/openapi.json", {200, 404}),
    "docs": ("/docs", {200, 404}),
    "unknown-api-path": ("/api/v2/users", {404}),
    "metrics": ("/metrics", {200, 404}),
}


@pytest.mark.parametrize(("target", "allowed"), list(TARGETS.values()), ids=list(TARGETS))
def test_hostile_target_is_answered_soundly(
    server: ServerProcess, target: str, allowed: set[int]
) -> None:
    ex = exchange(server.port, request("GET", target), expect=1)
    assert ex.responses, ex
    response = ex.responses[0]
    assert_sound(response)
    assert response.status in allowed, (response, response.body[:300])
    assert "x-injected" not in response.headers


# header field -> value (latin-1 bytes on the wire), on GET /api/v1/users.
HEADERS: dict[str, tuple[str, str]] = {
    "accept-garbage": ("Accept", "*/*;q=abc, text/html;q=-1"),
    "accept-problem-only": ("Accept", "application/problem+json"),
    "accept-none-acceptable": ("Accept", "image/png"),
    "accept-encoding-many": ("Accept-Encoding", "gzip;q=1, " * 200),
    "accept-encoding-unknown": ("Accept-Encoding", "br;q=2, zstd, x-evil"),
    "if-none-match-quotes": ("If-None-Match", '"' * 500),
    "if-none-match-star": ("If-None-Match", "*"),
    "if-modified-since-garbage": ("If-Modified-Since", "yesterday"),
    "range": ("Range", "bytes=0-0,-1"),
    "cookie-garbage": ("Cookie", 'a="b; c=;;; =d'),
    "authorization-garbage": ("Authorization", "Bearer \xff\xfe"),
    "x-forwarded-for-garbage": ("X-Forwarded-For", "not-an-ip, ::::, 999.999.999.999"),
    "x-forwarded-for-long": ("X-Forwarded-For", ", ".join(["10.0.0.1"] * 300)),
    "forwarded-garbage": ("Forwarded", 'for="[::1]:x";proto=javascript;host=evil'),
    "x-request-id-long": ("X-Request-ID", "r" * 3000),
    "x-request-id-control": ("X-Request-ID", "a\tb"),
    "traceparent-garbage": ("traceparent", "00-zzzz-yyyy-01"),
    "traceparent-all-zero": ("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"),
    "tracestate-huge": ("tracestate", ",".join(f"k{i}=v" for i in range(300))),
    "baggage-garbage": ("baggage", "=;=;%zz"),
    "content-length-on-get": ("Content-Length", "0"),
    "transfer-encoding-unknown-on-get": ("X-Transfer-Encoding", "chunked"),
    "host-with-port-garbage": ("X-Host", "evil:99999"),
    "max-forwards": ("Max-Forwards", "-1"),
    "te-trailers": ("TE", "trailers, deflate;q=0.5"),
}


@pytest.mark.parametrize(("name", "value"), list(HEADERS.values()), ids=list(HEADERS))
def test_hostile_header_is_answered_soundly(server: ServerProcess, name: str, value: str) -> None:
    ex = exchange(server.port, request("GET", f"{U}?per_page=1", headers={name: value}), expect=1)
    assert ex.responses, ex
    response = ex.responses[0]
    assert_sound(response)
    assert response.status in (200, 304, 406, 416, 431), (response, response.body[:300])


def test_every_spelling_of_an_id_sees_the_latest_write(server: ServerProcess, seed: Seed) -> None:
    # Lax id spellings reach the same row: none may keep a stale cached copy after a write.
    spellings = [str(seed.user_id), f"0{seed.user_id}", f"+{seed.user_id}", f"{seed.user_id}.0"]
    with httpx.Client(base_url=server.url) as client:
        for spelling in spellings:
            client.get(f"{U}/{spelling}")  # fill whatever caches there are
        for name in ("Renamed", "Seed"):
            patched = client.patch(f"{U}/{seed.user_id}", json={"name": name})
            assert patched.status_code == 200, patched.text
            for spelling in spellings:
                got = client.get(f"{U}/{spelling}")
                assert got.status_code in (200, 422), got.text
                if got.status_code == 200:
                    assert got.json()["name"] == name, (spelling, got.text)
