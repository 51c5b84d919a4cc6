"""Fixtures for the rate-limit integration tests (real Redis from the session fixture)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from floodgate.ratelimit import RedisStore
from tests.support.services import RedisServer


@pytest.fixture
def key_tag() -> str:
    """A hash tag of its own per test: tests share one Redis but never each other's counters."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, timeout_s=2.0)
    await store.start()
    yield store
    await store.close()
