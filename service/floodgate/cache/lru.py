"""A bounded least-recently-used map with per-entry expiry: the L1 tier (and the in-memory L2)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlLru(Generic[V]):
    """Key → {variant: value}, at most `max_entries` keys, each variant expiring on its own.

    Variants are the representations of one resource that differ by request headers (`Vary`); they
    live under one key so that evicting the key drops them all. `max_entries=0` disables the map.
    """

    __slots__ = ("_clock", "_data", "max_entries", "max_variants")

    def __init__(
        self,
        max_entries: int,
        *,
        max_variants: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0 or max_variants < 1:
            raise ValueError("max_entries must be >= 0 and max_variants >= 1")
        self.max_entries = max_entries
        self.max_variants = max_variants
        self._clock = clock
        self._data: OrderedDict[str, dict[str, tuple[float, V]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, variant: str = "") -> V | None:
        """The live value, refreshed as most recently used; None when absent or expired."""
        slot = self._data.get(key)
        if slot is None:
            return None
        item = slot.get(variant)
        if item is None:
            return None
        if item[0] <= self._clock():
            del slot[variant]
            if not slot:
                del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def put(self, key: str, variant: str, value: V, ttl_s: float) -> None:
        if self.max_entries == 0 or ttl_s <= 0:
            return
        data = self._data
        slot = data.get(key)
        if slot is None:
            slot = data[key] = {}
            if len(data) > self.max_entries:
                data.popitem(last=False)
        else:
            data.move_to_end(key)
            if variant not in slot and len(slot) >= self.max_variants:
                del slot[next(iter(slot))]
        slot[variant] = (self._clock() + ttl_s, value)

    def pop(self, key: str) -> bool:
        """Drop every variant of `key`; True if there was anything."""
        return self._data.pop(key, None) is not None

    def pop_prefix(self, prefix: str) -> int:
        """Drop every key starting with `prefix` (a scan: meant for rare, bulk invalidation)."""
        doomed = [key for key in self._data if key.startswith(prefix)]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    def clear(self) -> None:
        self._data.clear()
