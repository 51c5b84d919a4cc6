"""Policy sets via the shared Redis: the wire format the operator writes, and `RedisPolicySource`.

Protocol (all keys in the shared Redis at FLOODGATE_LIMITS_URL):

* `floodgate:policyset` — JSON `{"generation": int, "digest": str, "policies": [RateLimitPolicy…]}`,
  written by the operator (the generation grows with each change of content).
* `floodgate:policyset` channel — the operator publishes the new generation after each write.
* `floodgate:ack:<pod>:<process>` — the generation a process has applied, refreshed every
  `heartbeat_s` with a TTL, so a dead process drops out by itself. The operator aggregates these
  into each RateLimitPolicy's status (appliedPods / readyPods / Programmed).

A process applies a set atomically (the limiter swaps one compiled object), polls the key on every
heartbeat too (a missed pub/sub message costs at most one heartbeat), and keeps its last good set
when Redis is unreachable or the payload is invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from pydantic import ValidationError

from floodgate.ratelimit.model import RateLimitPolicy
from floodgate.ratelimit.sources.base import PolicySink, WatchingSource
from floodgate.redis_client import redis_client

POLICYSET_KEY = "floodgate:policyset"
POLICYSET_CHANNEL = "floodgate:policyset"
ACK_PREFIX = "floodgate:ack:"

# The logger keeps the name it had before this module moved: log filters may select on it.
logger = logging.getLogger("floodgate.ratelimit.distribution")


def encode_policy_set(generation: int, digest: str, policies: Sequence[RateLimitPolicy]) -> bytes:
    docs = [p.model_dump(mode="json", by_alias=True) for p in policies]
    return orjson.dumps({"generation": generation, "digest": digest, "policies": docs})


def decode_policy_set(raw: bytes | str) -> tuple[int, str, list[RateLimitPolicy]]:
    """Parse a stored set; ValueError with a readable reason when it is not one."""
    try:
        data: Any = orjson.loads(raw)
        generation = int(data["generation"])
        digest = str(data["digest"])
        policies = [RateLimitPolicy.model_validate(doc) for doc in data["policies"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ValueError(f"invalid policy set in {POLICYSET_KEY}: {exc}") from exc
    return generation, digest, policies


def process_identity() -> tuple[str, str]:
    """(pod, process): the pod name from the downward API, else the host name; the pid."""
    pod = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()
    return pod, str(os.getpid())


def ack_key(pod: str, process: str) -> str:
    return f"{ACK_PREFIX}{pod}:{process}"


class RedisPolicySource(WatchingSource):
    """A `PolicySource` fed by the operator through the shared Redis."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat_s: float = 2.0,
        ack_ttl_s: float = 10.0,
        identity: tuple[str, str] | None = None,
    ) -> None:
        self._url = url
        self._heartbeat_s = heartbeat_s
        self._ack_ttl_ms = int(ack_ttl_s * 1000)
        self._pod, self._process = identity or process_identity()
        self._redis: aioredis.Redis | None = None
        self._task = None
        self._sink: PolicySink | None = None
        self.applied_generation = 0
        self.applied_digest = ""

    @property
    def ack_key(self) -> str:
        return ack_key(self._pod, self._process)

    async def start(self, sink: PolicySink) -> None:
        self._sink = sink
        self._redis = redis_client(self._url, timeout_s=2.0, role="shared")
        try:
            await self._refresh()
        except (aioredis.RedisError, OSError) as exc:
            # Start without limits rather than not at all; the loop below keeps trying.
            logger.warning("policy set not loaded at start (%s); retrying in the background", exc)
        if self.applied_generation == 0:
            sink.apply_policies([], origin="redis", generation=0)
        self._task = asyncio.create_task(self._run(), name="floodgate-policy-subscriber")

    async def close(self) -> None:
        await super().close()
        if self._redis is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._redis.delete(self.ack_key)  # leave the pod count at once
            await self._redis.aclose()
            self._redis = None

    async def _refresh(self) -> None:
        """Apply the stored set if it is newer than ours, then acknowledge what we run."""
        assert self._redis is not None
        assert self._sink is not None
        raw = await self._redis.get(POLICYSET_KEY)
        if raw is not None:
            try:
                generation, digest, policies = decode_policy_set(raw)
            except ValueError as exc:
                self._sink.report_invalid([str(exc)], origin="redis")
            else:
                # Any difference, not only a newer generation: a shared Redis that lost its data
                # starts counting again, and the operator republishes what it has.
                if (generation, digest) != (self.applied_generation, self.applied_digest):
                    try:
                        self._sink.apply_policies(policies, origin="redis", generation=generation)
                    except ValueError as exc:
                        self._sink.report_invalid([str(exc)], origin="redis")
                    else:
                        self.applied_generation, self.applied_digest = generation, digest
        await self._redis.set(self.ack_key, str(self.applied_generation), px=self._ack_ttl_ms)

    async def _run(self) -> None:
        assert self._redis is not None
        backoff = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(POLICYSET_CHANNEL)
                    # Anything published before the subscription took effect is read here.
                    await self._refresh()
                    backoff = 0.1
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=self._heartbeat_s
                        )
                        # A message or a heartbeat: either way re-read and re-acknowledge.
                        del message
                        await self._refresh()
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                logger.warning("policy subscriber lost the shared Redis (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
