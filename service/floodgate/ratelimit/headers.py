"""The syntax of the draft-ietf-httpapi-ratelimit-headers fields (RateLimit-Policy, RateLimit).

Both fields are Structured Field Lists whose members are Strings naming a quota policy, with
parameters, e.g. `RateLimit-Policy: "per-client-reads";q=100;w=60` and
`RateLimit: "per-client-reads";r=42;t=5` (q quota units per w seconds; r units remaining, t seconds
until the allowance is whole again — on a 429 the denying rule's t is the Retry-After delay instead,
as the draft asks that both name the same instant). The per-rule constant parts are built here when
policies compile; `responses` writes the per-request fields.
"""

from __future__ import annotations


def sf_string(value: str) -> str:
    """An RFC 8941 String: printable ASCII, with `\\` and `"` escaped."""
    if any(not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise ValueError(f"{value!r} cannot be a structured-field string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy_item(label: str, quota: int, window_s: int) -> str:
    """One member of RateLimit-Policy: `"label";q=100;w=60`."""
    return f"{sf_string(label)};q={quota};w={window_s}"
