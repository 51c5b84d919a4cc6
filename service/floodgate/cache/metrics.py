"""The cache's Prometheus counters, registered once per process however many apps use them.

Children for every label combination are bound here, so the hot path increments a pre-resolved child
and every series exists (at 0) from the first scrape.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import REGISTRY, Counter


def _counter(name: str, documentation: str, labels: Sequence[str]) -> Counter:
    try:
        return Counter(name, documentation, labels)
    except ValueError:
        # Already registered in this process (module reloaded, or another part declared it first):
        # share it rather than crash.
        existing = REGISTRY._names_to_collectors.get(name)
        if isinstance(existing, Counter):
            return existing
        raise


LOOKUPS = _counter(
    "floodgate_cache_lookups_total",
    "Cache lookups by tier (l1 = in-process, l2 = Redis sidecar or in-memory) and result.",
    ["tier", "result"],
)
FILLS = _counter(
    "floodgate_cache_fills_total",
    "Cache misses by how they were answered: loaded by this caller, coalesced onto another "
    "caller's load (same process or another process via the fill lock), or the loader failed.",
    ["outcome"],
)
BACKEND_ERRORS = _counter(
    "floodgate_cache_backend_errors_total",
    "Failed or skipped (circuit open) calls to a cache backend; requests were served without it.",
    ["backend"],
)
INVALIDATIONS = _counter(
    "floodgate_cache_invalidations_total",
    "Invalidations applied in this process, by origin (local call or bus message).",
    ["origin"],
)

L1_HIT = LOOKUPS.labels(tier="l1", result="hit")
L1_MISS = LOOKUPS.labels(tier="l1", result="miss")
L2_HIT = LOOKUPS.labels(tier="l2", result="hit")
L2_MISS = LOOKUPS.labels(tier="l2", result="miss")
FILL_LOADED = FILLS.labels(outcome="loaded")
FILL_COALESCED = FILLS.labels(outcome="coalesced")
FILL_ERROR = FILLS.labels(outcome="error")
L2_ERRORS = BACKEND_ERRORS.labels(backend="l2")
BUS_ERRORS = BACKEND_ERRORS.labels(backend="bus")
INVALIDATIONS_LOCAL = INVALIDATIONS.labels(origin="local")
INVALIDATIONS_REMOTE = INVALIDATIONS.labels(origin="remote")
