"""Metrics: contract names, low-cardinality labels, and no crash when apps are built repeatedly."""

from __future__ import annotations

import importlib

from prometheus_client import REGISTRY

from floodgate.cache import TieredCache, metrics


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_contract_series_exist_from_the_start() -> None:
    for tier in ("l1", "l2"):
        for result in ("hit", "miss"):
            assert (
                REGISTRY.get_sample_value(
                    "floodgate_cache_lookups_total", {"tier": tier, "result": result}
                )
                is not None
            )
    for outcome in ("loaded", "coalesced", "error"):
        assert (
            REGISTRY.get_sample_value("floodgate_cache_fills_total", {"outcome": outcome})
            is not None
        )


def test_reimport_and_many_instances_share_the_counters() -> None:
    reloaded = importlib.reload(metrics)
    assert reloaded.LOOKUPS is REGISTRY._names_to_collectors["floodgate_cache_lookups_total"]
    caches = [TieredCache() for _ in range(3)]
    assert len(caches) == 3


async def test_lookups_and_fills_are_counted() -> None:
    cache = TieredCache()
    await cache.start()
    try:
        before = {
            "l1_miss": sample("floodgate_cache_lookups_total", tier="l1", result="miss"),
            "l1_hit": sample("floodgate_cache_lookups_total", tier="l1", result="hit"),
            "loaded": sample("floodgate_cache_fills_total", outcome="loaded"),
        }

        async def load() -> int:
            return 1

        await cache.get_or_load("t:metrics:1", load)
        await cache.get_or_load("t:metrics:1", load)
        assert sample("floodgate_cache_lookups_total", tier="l1", result="miss") == (
            before["l1_miss"] + 1
        )
        assert sample("floodgate_cache_lookups_total", tier="l1", result="hit") == (
            before["l1_hit"] + 1
        )
        assert sample("floodgate_cache_fills_total", outcome="loaded") == before["loaded"] + 1
    finally:
        await cache.close()
