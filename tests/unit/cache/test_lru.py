"""The L1 map: bounded LRU order, per-variant expiry, bulk eviction."""

from __future__ import annotations

import pytest

from floodgate.cache.lru import TtlLru


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_returns_what_was_put_until_it_expires() -> None:
    clock = Clock()
    lru: TtlLru[str] = TtlLru(10, clock=clock)
    lru.put("a", "", "one", ttl_s=5)
    assert lru.get("a") == "one"
    clock.now += 4.999
    assert lru.get("a") == "one"
    clock.now += 0.001
    assert lru.get("a") is None
    assert "a" not in lru  # an expired entry is dropped when seen


def test_least_recently_used_key_is_evicted_first() -> None:
    lru: TtlLru[int] = TtlLru(2)
    lru.put("a", "", 1, 60)
    lru.put("b", "", 2, 60)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", "", 3, 60)
    assert lru.get("b") is None
    assert lru.get("a") == 1
    assert lru.get("c") == 3
    assert len(lru) == 2


def test_rewriting_a_key_refreshes_its_position() -> None:
    lru: TtlLru[int] = TtlLru(2)
    lru.put("a", "", 1, 60)
    lru.put("b", "", 2, 60)
    lru.put("a", "", 10, 60)
    lru.put("c", "", 3, 60)
    assert lru.get("a") == 10
    assert lru.get("b") is None


def test_variants_live_and_die_together_under_one_key() -> None:
    clock = Clock()
    lru: TtlLru[str] = TtlLru(10, max_variants=2, clock=clock)
    lru.put("k", "en", "hello", 10)
    lru.put("k", "fr", "bonjour", 1)
    assert lru.get("k", "en") == "hello"
    assert lru.get("k", "fr") == "bonjour"
    assert lru.get("k", "de") is None
    clock.now += 2
    assert lru.get("k", "fr") is None
    assert lru.get("k", "en") == "hello"
    lru.put("k", "fr", "salut", 10)
    lru.put("k", "de", "hallo", 10)  # over max_variants: the oldest variant goes
    assert lru.get("k", "en") is None
    assert lru.pop("k")
    assert lru.get("k", "de") is None
    assert not lru.pop("k")


def test_pop_prefix_and_clear() -> None:
    lru: TtlLru[int] = TtlLru(10)
    for key in ("users:a", "users:b", "messages:a"):
        lru.put(key, "", 1, 60)
    assert lru.pop_prefix("users:") == 2
    assert lru.get("messages:a") == 1
    lru.clear()
    assert len(lru) == 0


def test_zero_capacity_or_ttl_stores_nothing() -> None:
    disabled: TtlLru[int] = TtlLru(0)
    disabled.put("a", "", 1, 60)
    assert disabled.get("a") is None
    lru: TtlLru[int] = TtlLru(5)
    lru.put("a", "", 1, 0)
    assert lru.get("a") is None


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        TtlLru(-1)
