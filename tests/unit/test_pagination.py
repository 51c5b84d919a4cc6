"""Cursor codec and offset arithmetic: pure logic."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floodgate.web.pagination import CursorCodec, InvalidCursor, offset_meta

codec = CursorCodec(b"k" * 32)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(ts=moments, row_id=st.integers(1, 2**63 - 1), scope=st.text(max_size=20))
def test_roundtrip_is_exact_to_the_microsecond(ts: datetime, row_id: int, scope: str) -> None:
    cursor = codec.encode(after=(ts, row_id), scope=scope)
    assert codec.decode(cursor, scope=scope) == (ts, row_id)


def test_naive_timestamps_are_taken_as_utc() -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0, 123456)
    cursor = codec.encode(after=(naive, 1), scope="")
    assert codec.decode(cursor, scope="") == (naive.replace(tzinfo=UTC), 1)


def test_every_single_byte_change_is_detected() -> None:
    raw = base64.urlsafe_b64decode(codec.encode(after=(datetime.now(UTC), 42), scope="u=1") + "==")
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        cursor = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(InvalidCursor):
            codec.decode(cursor, scope="u=1")


def test_other_secret_or_scope_is_rejected() -> None:
    cursor = codec.encode(after=(datetime.now(UTC), 1), scope="u=1")
    with pytest.raises(InvalidCursor, match="other filters"):
        codec.decode(cursor, scope="u=2")
    with pytest.raises(InvalidCursor):
        CursorCodec(b"x" * 32).decode(cursor, scope="u=1")


@given(garbage=st.text(max_size=80))
def test_garbage_never_raises_anything_but_invalid_cursor(garbage: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(garbage, scope="")


def test_signed_payload_of_wrong_shape_is_rejected() -> None:
    import hashlib
    import hmac

    payload = b'["a", "b", ""]'
    tag = hmac.new(b"k" * 32, payload, hashlib.sha256).digest()[:12]
    cursor = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, scope="")


@pytest.mark.parametrize(
    ("total", "per_page", "pages"), [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2), (99, 1, 99)]
)
def test_offset_meta_pages(total: int, per_page: int, pages: int) -> None:
    assert offset_meta(total=total, per_page=per_page, page=3).model_dump() == {
        "total": total,
        "pages": pages,
        "current": 3,
    }


def test_microsecond_neighbours_get_distinct_cursors() -> None:
    ts = datetime(2026, 5, 5, 5, 5, 5, 999999, tzinfo=UTC)
    a = codec.encode(after=(ts, 1), scope="")
    b = codec.encode(after=(ts + timedelta(microseconds=1), 1), scope="")
    assert codec.decode(a, scope="")[0] < codec.decode(b, scope="")[0]


def _signed(payload: bytes, secret: bytes = b"k" * 32) -> str:
    """A cursor with a valid signature over any payload: what anyone holding the secret can mint."""
    import hashlib
    import hmac

    tag = hmac.new(secret, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "payload",
    [
        b'[253402300800000000, 1, ""]',  # the first microsecond after datetime.max
        b'[-62135596800000001, 1, ""]',  # the last one before datetime.min
        b'[99999999999999999999, 1, ""]',
        b'[-99999999999999999999, 1, ""]',
        b'[0, 9223372036854775808, ""]',  # 2**63: beyond BIGINT
        b'[0, 18446744073709551615, ""]',
        b'[0, -1, ""]',
        b'[0, 0, ""]',
        b'[true, 1, ""]',
        b'[0, true, ""]',
        b'[1.5, 1, ""]',
        b'[0, 1e400, ""]',
        b'[NaN, 1, ""]',
        b'[Infinity, 1, ""]',
        b'["0", 1, ""]',
        b'[0, 1, "", "extra"]',
        b"[0, 1]",
        b'{"a": 0, "b": 1, "": 2}',
        b'"ab"',
        b'"abc"',
        b"null",
        b"[0, 1, null]",
        b'[0, 1, [""]]',
        b"\xff\xfe",
    ],
)
def test_signed_but_out_of_range_payloads_are_invalid(payload: bytes) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(_signed(payload), scope="")


def test_the_whole_datetime_range_and_bigint_range_are_accepted() -> None:
    low = datetime.min.replace(tzinfo=UTC)
    high = datetime.max.replace(tzinfo=UTC)
    for ts, row_id in ((low, 1), (high, 2**63 - 1)):
        assert codec.decode(codec.encode(after=(ts, row_id), scope=""), scope="") == (ts, row_id)
