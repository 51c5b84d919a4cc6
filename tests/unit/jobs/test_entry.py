"""Stream entry fields: round trip, and tolerance of malformed entries."""

from __future__ import annotations

import orjson

from floodgate.jobs.entry import JobEntry, entry_id_ms


def test_fields_round_trip_through_bytes() -> None:
    entry = JobEntry(
        "j1", "import", 2, 1_700_000_000_123, "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    raw = {k.encode(): v.encode() for k, v in entry.fields().items()}
    assert JobEntry.parse(raw) == entry


def test_no_traceparent_field_without_a_trace() -> None:
    assert "traceparent" not in JobEntry("j1", "t", 0, 1).fields()


def test_delayed_member_is_the_flat_field_list() -> None:
    entry = JobEntry("j1", "t", 1, 5)
    assert orjson.loads(entry.member()) == [
        "id",
        "j1",
        "type",
        "t",
        "attempt",
        "1",
        "enqueued_at",
        "5",
    ]


def test_malformed_fields_still_parse() -> None:
    entry = JobEntry.parse({b"attempt": b"many", b"enqueued_at": b"-3"})
    assert entry == JobEntry("", "", 0, 0, None)


def test_entry_id_time() -> None:
    assert entry_id_ms("1700000000123-7") == 1_700_000_000_123
