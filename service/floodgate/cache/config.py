"""The cache's configuration: one frozen object, validated once, built from the app's settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

STORE_SCHEMES = frozenset({"memory", "redis", "rediss", "unix"})
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+\Z")


def is_memory_url(url: str) -> bool:
    return urlsplit(url).scheme == "memory"


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Every knob of the tiered cache; the defaults suit a per-pod sidecar on loopback."""

    cache_url: str = "memory://"
    """L2: `redis://127.0.0.1:6379/0` (the pod's sidecar) or `memory://` (in-process)."""
    bus_url: str = "memory://"
    """Shared Redis for invalidations and the cross-pod fill lock; `memory://` = this process."""
    l1_max_entries: int = 10_000
    """Keys held in the per-process L1 (0 disables L1)."""
    l1_max_ttl_s: float | None = None
    """Cap on how long L1 keeps an entry (bounds staleness when there is no shared bus)."""
    memory_l2_max_entries: int = 100_000
    default_ttl_s: float = 30.0
    timeout_s: float = 0.25
    """Socket connect/read timeout for every Redis call."""
    lock_ttl_s: float = 2.0
    """Lifetime of the fill lock: a holder that died is replaced after this long."""
    lock_wait_s: float = 2.5
    """How long a process waits for another's fill before loading itself."""
    handoff_ttl_s: float = 5.0
    """How long a fill stays readable under the lock key for processes of other pods."""
    ack_timeout_s: float = 1.0
    """How long an invalidation waits for every subscribed process to confirm its eviction."""
    breaker_failures: int = 3
    breaker_cooldown_s: float = 1.0
    log_interval_s: float = 10.0
    key_prefix: str = "fg:c"
    max_body_bytes: int = 1 << 20
    """Responses larger than this are served but not stored."""

    def __post_init__(self) -> None:
        for url in (self.cache_url, self.bus_url):
            if urlsplit(url).scheme not in STORE_SCHEMES:
                raise ValueError(f"unsupported cache store URL {url!r}: use memory:// or redis://")
        if not _PREFIX.match(self.key_prefix):
            raise ValueError(f"key_prefix {self.key_prefix!r} must match [A-Za-z0-9_.:-]+")
        positive = {
            "default_ttl_s": self.default_ttl_s,
            "timeout_s": self.timeout_s,
            "lock_ttl_s": self.lock_ttl_s,
            "lock_wait_s": self.lock_wait_s,
            "handoff_ttl_s": self.handoff_ttl_s,
            "ack_timeout_s": self.ack_timeout_s,
            "breaker_cooldown_s": self.breaker_cooldown_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.l1_max_ttl_s is not None and not self.l1_max_ttl_s > 0:
            raise ValueError("l1_max_ttl_s must be > 0 or None")
        if self.l1_max_entries < 0 or self.memory_l2_max_entries < 0:
            raise ValueError("entry limits must be >= 0")
        if self.breaker_failures < 1 or self.max_body_bytes < 0:
            raise ValueError("breaker_failures must be >= 1 and max_body_bytes >= 0")
