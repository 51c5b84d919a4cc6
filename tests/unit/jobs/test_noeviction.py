"""The start-up check that the queue's Redis will not evict queued jobs."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from floodgate.jobs import JobQueue


class _ConfigStub:
    """Just enough of a client for `check_noeviction` (and for building a JobQueue)."""

    def __init__(self, reply: dict[str, str] | Exception) -> None:
        self.reply = reply

    def register_script(self, script: str) -> object:
        return object()

    async def config_get(self, pattern: str) -> dict[str, str]:
        assert pattern == "maxmemory-policy"
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def _queue(reply: dict[str, str] | Exception) -> JobQueue:
    return JobQueue(cast(aioredis.Redis, cast(Any, _ConfigStub(reply))), "q")


async def test_noeviction_passes() -> None:
    assert await _queue({"maxmemory-policy": "noeviction"}).check_noeviction() is None


async def test_an_evicting_policy_is_named_in_the_warning() -> None:
    warning = await _queue({"maxmemory-policy": "allkeys-lru"}).check_noeviction()
    assert warning is not None
    assert "allkeys-lru" in warning
    assert "noeviction" in warning


async def test_config_disabled_gives_a_could_not_check_warning() -> None:
    disabled = ResponseError("unknown command 'CONFIG'")
    warning = await _queue(disabled).check_noeviction()
    assert warning is not None
    assert warning.startswith("could not check")
