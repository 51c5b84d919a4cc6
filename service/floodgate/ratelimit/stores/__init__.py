"""The GCRA counter stores (`memory`, `redis`) and `store_from_url`, which picks one by URL."""

from __future__ import annotations

from floodgate.ratelimit.gcra import CounterStore
from floodgate.ratelimit.stores.memory import MemoryStore
from floodgate.ratelimit.stores.redis import RedisStore, store_breaker

__all__ = ["MemoryStore", "RedisStore", "store_from_url"]


def store_from_url(
    limits_url: str,
    *,
    timeout_s: float = 0.25,
    breaker_failures: int = 3,
    breaker_cooldown_s: float = 1.0,
    coalesce: bool = True,
) -> CounterStore:
    """`memory://` → MemoryStore; `redis://`, `rediss://`, `unix://` → RedisStore (unconnected)."""
    scheme = limits_url.split("://", 1)[0].lower() if "://" in limits_url else ""
    if scheme == "memory":
        return MemoryStore()
    if scheme in ("redis", "rediss", "unix"):
        return RedisStore(
            limits_url,
            timeout_s=timeout_s,
            coalesce=coalesce,
            breaker=store_breaker(
                failure_threshold=breaker_failures, cooldown_s=breaker_cooldown_s
            ),
        )
    raise ValueError(
        f"unsupported limits URL {limits_url!r}: use memory:// or redis://host:port/db"
    )
