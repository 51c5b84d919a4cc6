"""Decisions as HTTP: the RateLimit header fields, and 429 / 503 answers with problem+json."""

from __future__ import annotations

from dataclasses import dataclass

from floodgate.ratelimit.policyset import CompiledRule
from floodgate.web.problem_body import problem_body, problem_headers

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a request that matched at least one rule.

    `status` 0 means let it through and add `headers` to the response; 429 or 503 means answer with
    that status, `headers` (complete, content-type included) and the problem+json `body`.
    """

    status: int
    headers: Headers
    body: bytes = b""


def limit_item(rule: CompiledRule, remaining: int, reset_s: int) -> str:
    """One member of RateLimit: `"label";r=42;t=5`."""
    return f"{rule.quoted_label};r={remaining};t={reset_s}"


def rule_headers(rule: CompiledRule, remaining: int, reset_s: int, legacy: bool) -> Headers:
    """RateLimit-Policy and RateLimit for a request that matched one advertised rule."""
    headers: Headers = [
        (b"ratelimit-policy", rule.policy_item.encode()),
        # limit_item(), inlined: this runs for every allowed request.
        (b"ratelimit", f"{rule.quoted_label};r={remaining};t={reset_s}".encode()),
    ]
    if legacy:
        headers += legacy_headers(rule, remaining, reset_s)
    return headers


def rules_headers(
    policy_items: list[str],
    limit_items: list[str],
    tightest: tuple[CompiledRule, int, int] | None,
    legacy: bool,
) -> Headers:
    """The fields for several rules; the X-RateLimit-* ones describe the `tightest` only."""
    if not policy_items:
        return []
    headers: Headers = [
        (b"ratelimit-policy", ", ".join(policy_items).encode()),
        (b"ratelimit", ", ".join(limit_items).encode()),
    ]
    if legacy and tightest is not None:
        headers += legacy_headers(*tightest)
    return headers


def legacy_headers(rule: CompiledRule, remaining: int, reset_s: int) -> Headers:
    """X-RateLimit-Limit / -Remaining / -Reset, for clients that predate the draft."""
    return [
        (b"x-ratelimit-limit", str(rule.requests).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"x-ratelimit-reset", str(reset_s).encode()),
    ]


def rejection(status: int, rule: CompiledRule, retry_s: int, headers: Headers) -> Decision:
    """A 429 (`rule` denied) or 503 (`rule` fails closed) answer; `headers` go after Retry-After."""
    retry_s = max(retry_s, 1)
    if status == 429:
        body = problem_body(
            429,
            f"Rate limit {rule.label!r} of policy {rule.policy} exceeded "
            f"({rule.requests} requests per {rule.period_s} s); retry in {retry_s} s.",
            type_slug="rate-limited",
            title="Too Many Requests",
        )
    else:
        body = problem_body(
            503,
            f"Rate limits of policy {rule.policy} cannot be checked right now and it "
            f"fails closed; retry in {retry_s} s.",
            type_slug="rate-limit-unavailable",
            title="Service Unavailable",
        )
    return Decision(
        status,
        [*problem_headers(body), (b"retry-after", str(retry_s).encode()), *headers],
        body,
    )
