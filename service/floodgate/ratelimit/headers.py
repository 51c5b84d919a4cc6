"""The draft-ietf-httpapi-ratelimit-headers fields (RateLimit-Policy, RateLimit) and problem bodies.

Syntax of the current draft: both fields are Structured Field Lists whose members are Strings naming
a quota policy, with parameters, e.g. `RateLimit-Policy: "per-client-reads";q=100;w=60` and
`RateLimit: "per-client-reads";r=42;t=5` (q quota units per w seconds; r units remaining, t seconds
until the allowance is whole again — on a 429 the denying rule's t is the Retry-After delay instead,
as the draft asks that both name the same instant).
"""

from __future__ import annotations

import json

PROBLEM_TYPE_RATE_LIMITED = "https://floodgate.dev/problems/rate-limited"
PROBLEM_TYPE_UNAVAILABLE = "https://floodgate.dev/problems/rate-limit-unavailable"


def sf_string(value: str) -> str:
    """An RFC 8941 String: printable ASCII, with `\\` and `"` escaped."""
    if any(not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise ValueError(f"{value!r} cannot be a structured-field string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy_item(label: str, quota: int, window_s: int) -> str:
    """One member of RateLimit-Policy: `"label";q=100;w=60`."""
    return f"{sf_string(label)};q={quota};w={window_s}"


def ratelimit_item(label: str, remaining: int, reset_s: int) -> str:
    """One member of RateLimit: `"label";r=42;t=5`."""
    return f"{sf_string(label)};r={remaining};t={reset_s}"


def ceil_seconds(microseconds: int) -> int:
    """Whole seconds, rounded up (a client that waits this long is never early)."""
    return -(-microseconds // 1_000_000) if microseconds > 0 else 0


def problem_body(*, type_: str, title: str, status: int, detail: str) -> bytes:
    """An RFC 9457 problem document."""
    return json.dumps(
        {"type": type_, "title": title, "status": status, "detail": detail},
        separators=(",", ":"),
    ).encode()
