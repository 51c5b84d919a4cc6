"""Limiter and middleware on a real Redis: charging, shadow mode, retry timing, identity, memo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from floodgate.ratelimit import (
    ClientIdentity,
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    RedisStore,
)
from tests.support.services import RedisServer
from tests.unit.ratelimit.builders import make_policy, rule_doc

pytestmark = pytest.mark.redis


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@asynccontextmanager
async def serving(
    url: str, key_tag: str, *policies: RateLimitPolicy, proxies: tuple[str, ...] = ()
) -> AsyncIterator[tuple[httpx.AsyncClient, RateLimiter, CollectorRegistry]]:
    registry = CollectorRegistry()
    limiter = RateLimiter(
        RedisStore(url, timeout_s=2.0),
        identity=ClientIdentity(proxies),
        key_tag=key_tag,
        registry=registry,
    )
    await limiter.start()
    limiter.apply_policies(policies)
    app = RateLimitMiddleware(Starlette(routes=[Route("/{p:path}", hello)]), limiter)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        try:
            yield client, limiter, registry
        finally:
            await limiter.close()


def decisions(registry: CollectorRegistry, policy: str, rule: str) -> Callable[[str], float]:
    def value(decision: str) -> float:
        labels = {"policy": policy, "rule": rule, "decision": decision}
        return registry.get_sample_value("floodgate_ratelimit_decisions_total", labels) or 0.0

    return value


async def test_each_rule_is_charged_once(redis_server: RedisServer, key_tag: str) -> None:
    policy = make_policy(
        "p",
        rule_doc("per-client", limit={"requests": 10, "period": "1m"}),
        rule_doc("everyone", key="Global", limit={"requests": 3, "period": "1m"}),
    )
    async with serving(redis_server.url, key_tag, policy) as (client, _, _):
        replies = [await client.get("/") for _ in range(4)]
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert replies[2].headers["ratelimit"] == '"per-client";r=7;t=18, "everyone";r=0;t=60'
        # The denied 4th request charged neither rule.
        assert replies[3].headers["ratelimit"] == '"per-client";r=7;t=18, "everyone";r=0;t=20'
        assert replies[3].headers["retry-after"] == "20"


async def test_shadow_mode_counts_but_never_rejects(
    redis_server: RedisServer, key_tag: str
) -> None:
    policy = make_policy(
        "dry", rule_doc("tiny", limit={"requests": 2, "period": "1m"}), mode="Shadow"
    )
    async with serving(redis_server.url, key_tag, policy) as (client, _, registry):
        statuses = [(await client.get("/")).status_code for _ in range(6)]
        assert statuses == [200] * 6
        value = decisions(registry, "shop/dry", "tiny")
        assert (value("allow"), value("shadow_deny"), value("deny")) == (2, 4, 0)


async def test_retry_after_and_reset_are_true(redis_server: RedisServer, key_tag: str) -> None:
    policy = make_policy("p", rule_doc("slow", limit={"requests": 2, "period": "2s"}))  # T = 1 s
    async with serving(redis_server.url, key_tag, policy) as (client, _, _):
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/")).status_code == 200
        denied = await client.get("/")
        assert denied.status_code == 429
        retry_after = int(denied.headers["retry-after"])
        assert retry_after == 1
        await asyncio.sleep(retry_after)
        allowed = await client.get("/")
        assert allowed.status_code == 200  # retrying after Retry-After works
        reset = int(allowed.headers["ratelimit"].rsplit("t=", 1)[1])
        assert reset == 2
        await asyncio.sleep(reset)
        # After t seconds the whole allowance (q = 2) is back, and not more.
        assert [(await client.get("/")).status_code for _ in range(3)] == [200, 200, 429]


async def test_forwarded_for_only_from_trusted_proxies(
    redis_server: RedisServer, key_tag: str
) -> None:
    policy = make_policy("p", rule_doc("ip", limit={"requests": 1, "period": "1m"}))
    spoofs = [{"x-forwarded-for": f"198.51.100.{i}"} for i in range(3)]
    async with serving(redis_server.url, key_tag + "u", policy) as (client, _, _):
        statuses = [(await client.get("/", headers=h)).status_code for h in spoofs]
        assert statuses == [200, 429, 429]  # one client (the peer), whatever the header says
    async with serving(redis_server.url, key_tag + "t", policy, proxies=("127.0.0.1/32",)) as (
        client,
        _,
        _,
    ):
        statuses = [(await client.get("/", headers=h)).status_code for h in spoofs]
        assert statuses == [200, 200, 200]  # three clients behind our proxy
        assert (await client.get("/", headers=spoofs[0])).status_code == 429


async def test_over_limit_keys_are_denied_locally(redis_server: RedisServer, key_tag: str) -> None:
    policy = make_policy("p", rule_doc("one", limit={"requests": 1, "period": "1s"}))
    async with serving(redis_server.url, key_tag, policy) as (client, limiter, registry):
        store: Any = limiter.store
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/")).status_code == 429
        calls = store.calls
        replies = [await client.get("/") for _ in range(20)]
        assert {r.status_code for r in replies} == {429}
        assert store.calls == calls  # no Redis call while the key is known to be over
        assert all(r.headers["retry-after"] == "1" for r in replies)
        assert decisions(registry, "shop/p", "one")("deny") == 21
        await asyncio.sleep(1.0)
        assert (await client.get("/")).status_code == 200  # the memo expired on time
        assert store.calls == calls + 1
