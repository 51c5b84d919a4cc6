"""Store failures on our own Redis: restart (scripts lost), stop (Open/Closed), hang (breaker)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from floodgate.ratelimit import RateLimiter, RateLimitMiddleware, RedisStore
from floodgate.resilience import CircuitBreaker
from tests.support.services import RedisServer, start_redis
from tests.unit.ratelimit.builders import make_policy, rule_doc

pytestmark = pytest.mark.redis

TIMEOUT_S = 0.3
COOLDOWN_S = 0.5


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    if server.proc is not None:
        server.proc.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
async def app_on_own_redis(
    own_redis: RedisServer,
) -> AsyncIterator[tuple[httpx.AsyncClient, RateLimiter, CollectorRegistry]]:
    registry = CollectorRegistry()
    store = RedisStore(
        own_redis.url,
        timeout_s=TIMEOUT_S,
        breaker=CircuitBreaker(failure_threshold=3, cooldown_s=COOLDOWN_S),
    )
    limiter = RateLimiter(store, registry=registry)
    await limiter.start()
    limiter.apply_policies(
        [
            make_policy(
                "open",
                rule_doc(
                    "o", match={"path": {"value": "/open"}}, limit={"requests": 1, "period": "1m"}
                ),
            ),
            make_policy(
                "closed",
                rule_doc(
                    "c", match={"path": {"value": "/closed"}}, limit={"requests": 1, "period": "1m"}
                ),
                failure_mode="Closed",
            ),
        ]
    )
    app = RateLimitMiddleware(Starlette(routes=[Route("/{p:path}", hello)]), limiter)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client, limiter, registry
    await limiter.close()


async def wait_until_limited(client: httpx.AsyncClient, path: str, deadline_s: float = 5.0) -> None:
    """Poll until the store answers again (a response carrying RateLimit fields)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if "ratelimit" in (await client.get(path)).headers:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was not rate limited again within {deadline_s}s")


async def test_restart_loses_script_cache_and_limits_go_on(
    own_redis: RedisServer,
    app_on_own_redis: tuple[httpx.AsyncClient, RateLimiter, CollectorRegistry],
) -> None:
    client, _, _ = app_on_own_redis
    assert (await client.get("/open")).status_code == 200
    assert (await client.get("/open")).status_code == 429
    own_redis.restart()  # data and script cache gone
    await wait_until_limited(client, "/open")  # NOSCRIPT handled: the script was reloaded
    assert (await client.get("/open")).status_code == 429  # and it limits again


async def test_stopped_store_fails_open_or_closed_as_declared(
    own_redis: RedisServer,
    app_on_own_redis: tuple[httpx.AsyncClient, RateLimiter, CollectorRegistry],
) -> None:
    client, limiter, registry = app_on_own_redis
    assert await limiter.ping()
    own_redis.stop()
    assert not await limiter.ping()
    for _ in range(5):
        opened = await client.get("/open")
        assert opened.status_code == 200
        assert "ratelimit" not in opened.headers
        closed = await client.get("/closed")
        assert closed.status_code == 503
        assert closed.headers["content-type"] == "application/problem+json"
        assert int(closed.headers["retry-after"]) >= 1
        body = json.loads(closed.content)
        assert body["status"] == 503
        assert body["type"].endswith("/rate-limit-unavailable")
    assert registry.get_sample_value("floodgate_ratelimit_backend_errors_total") == 10
    own_redis.start()
    assert await limiter.ping()
    await wait_until_limited(client, "/closed")  # recovers by itself after the cool-down
    assert (await client.get("/closed")).status_code == 429


async def test_breaker_spares_requests_the_timeout_of_a_hung_store(
    own_redis: RedisServer,
    app_on_own_redis: tuple[httpx.AsyncClient, RateLimiter, CollectorRegistry],
) -> None:
    client, limiter, _ = app_on_own_redis
    assert (await client.get("/open")).status_code == 200
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)  # alive but silent: every call would time out
    started = time.monotonic()
    for _ in range(3):  # the failures that open the breaker each cost a timeout
        assert (await client.get("/open")).status_code == 200
    assert time.monotonic() - started >= 3 * TIMEOUT_S * 0.9
    slowest = 0.0
    for _ in range(50):
        started = time.monotonic()
        assert (await client.get("/open")).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < TIMEOUT_S * 0.9, "no request waited for a timeout while the breaker is open"
    store = limiter.store
    assert isinstance(store, RedisStore)
    assert store.breaker.state == "open"
    own_redis.proc.send_signal(signal.SIGCONT)
    await wait_until_limited(client, "/open")
    assert str(store.breaker.state) == "closed"
