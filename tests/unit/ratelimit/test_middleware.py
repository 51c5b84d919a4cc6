"""RateLimitMiddleware over the in-memory store: fields, 429 problems, shadow mode, metrics."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from floodgate.ratelimit import (
    ClientIdentity,
    MemoryStore,
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
)
from floodgate.ratelimit.middleware import Receive, Scope, Send
from tests.unit.ratelimit.builders import make_policy, rule_doc

SECOND = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello", headers={"x-app": "1"})


def build(
    *policies: RateLimitPolicy, legacy: bool = False, proxies: tuple[str, ...] = ()
) -> tuple[httpx.AsyncClient, RateLimiter, Clock, CollectorRegistry]:
    clock = Clock()
    registry = CollectorRegistry()
    limiter = RateLimiter(
        MemoryStore(clock=clock),
        identity=ClientIdentity(proxies),
        legacy_headers=legacy,
        registry=registry,
    )
    limiter.apply_policies(policies)
    app = RateLimitMiddleware(
        Starlette(routes=[Route("/{path:path}", hello, methods=["GET", "POST"])]), limiter
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, limiter, clock, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_allowed_responses_carry_the_draft_fields() -> None:
    client, _, clock, _ = build(
        make_policy("p", rule_doc("reads", limit={"requests": 5, "period": "10s"}))
    )
    first = await client.get("/a")
    assert first.status_code == 200
    assert first.text == "hello"
    assert first.headers["x-app"] == "1"
    assert first.headers["ratelimit-policy"] == '"reads";q=5;w=10'
    assert first.headers["ratelimit"] == '"reads";r=4;t=2'
    assert "x-ratelimit-limit" not in first.headers
    clock.now += SECOND // 2
    second = await client.get("/a")
    assert second.headers["ratelimit"] == '"reads";r=3;t=4'  # 3.5 s, rounded up


async def test_denial_is_a_problem_with_retry_after() -> None:
    client, _, clock, registry = build(
        make_policy("p", rule_doc("reads", limit={"requests": 2, "period": "10s"}))
    )
    for _ in range(2):
        assert (await client.get("/a")).status_code == 200
    clock.now += 1  # 5 s - 1 us until the next unit
    denied = await client.get("/a")
    assert denied.status_code == 429
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.headers["retry-after"] == "5"
    assert denied.headers["ratelimit"] == '"reads";r=0;t=5'
    assert denied.headers["ratelimit-policy"] == '"reads";q=2;w=10'
    assert "x-app" not in denied.headers  # the app was not called
    body = json.loads(denied.content)
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert body["type"].endswith("/rate-limited")
    assert "'reads'" in body["detail"]
    assert (
        sample(
            registry,
            "floodgate_ratelimit_decisions_total",
            policy="shop/p",
            rule="reads",
            decision="deny",
        )
        == 1
    )
    assert (
        sample(
            registry,
            "floodgate_ratelimit_decisions_total",
            policy="shop/p",
            rule="reads",
            decision="allow",
        )
        == 2
    )
    clock.now += 5 * SECOND - 1
    assert (await client.get("/a")).status_code == 200


async def test_legacy_headers_follow_the_tightest_rule() -> None:
    client, *_ = build(
        make_policy(
            "p",
            rule_doc("loose", limit={"requests": 100, "period": "1m"}),
            rule_doc("tight", limit={"requests": 3, "period": "1m"}),
        ),
        legacy=True,
    )
    response = await client.get("/a")
    assert response.headers["ratelimit-policy"] == '"loose";q=100;w=60, "tight";q=3;w=60'
    assert response.headers["ratelimit"] == '"loose";r=99;t=1, "tight";r=2;t=20'
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "2"
    assert response.headers["x-ratelimit-reset"] == "20"


async def test_each_matching_rule_is_charged_once_and_denials_charge_nothing() -> None:
    client, *_ = build(
        make_policy(
            "p",
            rule_doc("per-client", limit={"requests": 10, "period": "1m"}),
            rule_doc("writes", match={"methods": ["POST"]}, limit={"requests": 2, "period": "1m"}),
        )
    )
    for _ in range(2):
        assert (await client.post("/a")).status_code == 200
    assert (await client.post("/a")).status_code == 429  # writes exhausted; per-client not charged
    response = await client.get("/a")
    assert response.headers["ratelimit"] == '"per-client";r=7;t=18'  # 10 - 3 charged GETs/POSTs


async def test_shadow_rules_never_reject_and_are_not_advertised() -> None:
    client, _, _, registry = build(
        make_policy("s", rule_doc("tiny", limit={"requests": 1, "period": "1m"}), mode="Shadow")
    )
    statuses = [(await client.get("/a")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    labels = {"policy": "shop/s", "rule": "tiny"}
    assert (
        sample(registry, "floodgate_ratelimit_decisions_total", decision="shadow_deny", **labels)
        == 2
    )
    assert sample(registry, "floodgate_ratelimit_decisions_total", decision="allow", **labels) == 1
    response = await client.get("/a")
    assert "ratelimit" not in response.headers


async def test_unmatched_requests_pass_untouched() -> None:
    client, *_ = build(
        make_policy("p", rule_doc("api", match={"path": {"type": "PathPrefix", "value": "/api"}}))
    )
    response = await client.get("/other")
    assert response.status_code == 200
    assert "ratelimit" not in response.headers


async def test_header_keys_separate_clients_and_fall_back_to_the_address() -> None:
    client, *_ = build(
        make_policy(
            "p", rule_doc("per-key", key="Header:X-Api-Key", limit={"requests": 1, "period": "1m"})
        )
    )
    assert (await client.get("/", headers={"x-api-key": "alice"})).status_code == 200
    assert (await client.get("/", headers={"x-api-key": "alice"})).status_code == 429
    assert (await client.get("/", headers={"x-api-key": "bob"})).status_code == 200
    assert (await client.get("/")).status_code == 200  # no key: the client address
    assert (await client.get("/")).status_code == 429


async def test_xff_only_from_trusted_proxies() -> None:
    one_per_minute = make_policy("p", rule_doc("ip", limit={"requests": 1, "period": "1m"}))
    # httpx's ASGI transport connects from 127.0.0.1.
    trusted, *_ = build(one_per_minute, proxies=("127.0.0.0/8",))
    assert (await trusted.get("/", headers={"x-forwarded-for": "198.51.100.1"})).status_code == 200
    assert (await trusted.get("/", headers={"x-forwarded-for": "198.51.100.2"})).status_code == 200
    assert (await trusted.get("/", headers={"x-forwarded-for": "198.51.100.1"})).status_code == 429
    untrusted, *_ = build(one_per_minute)
    assert (
        await untrusted.get("/", headers={"x-forwarded-for": "198.51.100.1"})
    ).status_code == 200
    assert (
        await untrusted.get("/", headers={"x-forwarded-for": "198.51.100.2"})
    ).status_code == 429


async def test_policy_swap_is_atomic_and_counts_generations() -> None:
    client, limiter, _, registry = build(
        make_policy("p", rule_doc("r", limit={"requests": 1, "period": "1m"}))
    )
    assert sample(registry, "floodgate_policy_generation") == 1
    limiter.apply_policies([make_policy("p", rule_doc("r", limit={"requests": 9, "period": "1m"}))])
    assert limiter.policy_set.generation == 2
    assert sample(registry, "floodgate_policy_generation") == 2
    assert (await client.get("/")).headers["ratelimit-policy"] == '"r";q=9;w=60'


async def test_non_http_scopes_pass_through() -> None:
    _, limiter, _, _ = build(make_policy("p"))
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = RateLimitMiddleware(app, limiter)
    for kind in ("websocket", "lifespan"):
        await middleware({"type": kind, "path": "/", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen == ["websocket", "lifespan"]


def test_several_limiters_share_the_default_registry() -> None:
    first = RateLimiter.from_settings(limits_url="memory://")
    second = RateLimiter.from_settings(limits_url="memory://")
    assert first.metrics is second.metrics
    separate = RateLimiter(MemoryStore(), registry=CollectorRegistry())
    assert separate.metrics is not first.metrics


def test_unknown_limits_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported limits URL"):
        RateLimiter.from_settings(limits_url="postgres://x")
