"""The operator's side of the shared Redis: publish policy sets, read the pods' acknowledgements."""

from __future__ import annotations

from collections.abc import Sequence

from floodgate.ratelimit.model import RateLimitPolicy
from floodgate.ratelimit.sources.redis import (
    ACK_PREFIX,
    POLICYSET_CHANNEL,
    POLICYSET_KEY,
    decode_policy_set,
    encode_policy_set,
)
from floodgate.redis_client import redis_client


class PolicySetStore:
    def __init__(self, url: str) -> None:
        self._redis = redis_client(url, timeout_s=2.0)

    async def close(self) -> None:
        await self._redis.aclose()

    async def current(self) -> tuple[int, str] | None:
        """(generation, digest) of the stored set, None when there is none (or it is unreadable)."""
        raw = await self._redis.get(POLICYSET_KEY)
        if raw is None:
            return None
        try:
            generation, digest, _ = decode_policy_set(raw)
        except ValueError:
            return None
        return generation, digest

    async def publish(self, policies: Sequence[RateLimitPolicy], digest: str) -> int:
        """Store the set unless the same content is there already; returns its generation."""
        current = await self.current()
        if current is not None and current[1] == digest:
            return current[0]
        generation = (current[0] if current else 0) + 1
        await self._redis.set(POLICYSET_KEY, encode_policy_set(generation, digest, policies))
        await self._redis.publish(POLICYSET_CHANNEL, str(generation))
        return generation

    async def acks(self) -> dict[str, int]:
        """`<pod>:<process>` → applied generation, for every live API process."""
        keys = [key async for key in self._redis.scan_iter(match=f"{ACK_PREFIX}*", count=500)]
        if not keys:
            return {}
        values = await self._redis.mget(keys)
        found: dict[str, int] = {}
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue  # expired between SCAN and MGET
            member = (key.decode() if isinstance(key, bytes) else str(key)).removeprefix(ACK_PREFIX)
            try:
                found[member] = int(value)
            except ValueError:
                continue
        return found
