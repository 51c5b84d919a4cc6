"""UUIDv7 layout (RFC 9562): version, variant, the millisecond timestamp, ordering, randomness."""

from __future__ import annotations

import uuid

from floodgate.jobs.ids import uuid7, uuid7_ms


def test_layout_and_timestamp() -> None:
    value = uuid7(now_ms=1_796_282_789_123)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid7_ms(value) == 1_796_282_789_123
    assert str(value).startswith("01a2")  # 0x01a2... is 2026's milliseconds


def test_later_ids_sort_later_and_ids_do_not_repeat() -> None:
    ids = [uuid7(now_ms=ms) for ms in range(1_000, 1_100)]
    assert ids == sorted(ids)
    same_ms = {uuid7(now_ms=5) for _ in range(10_000)}
    assert len(same_ms) == 10_000
