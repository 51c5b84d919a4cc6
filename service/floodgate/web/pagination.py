"""Offset pages (`items` + `meta{total,pages,current}`) and tamper-evident keyset cursors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel

from floodgate.settings import Settings
from floodgate.web.problems import InvalidParameter

T = TypeVar("T")

_TAG_BYTES = 12
# Offsets stay far below the 64-bit range the databases accept, whatever the page size.
MAX_PAGE = 10_000_000


class OffsetMeta(BaseModel):
    total: int
    pages: int
    current: int


class OffsetPage(BaseModel, Generic[T]):
    items: list[T]
    meta: OffsetMeta


class CursorMeta(BaseModel):
    next_cursor: str | None
    limit: int


class CursorPage(BaseModel, Generic[T]):
    items: list[T]
    meta: CursorMeta


def offset_meta(*, total: int, per_page: int, page: int) -> OffsetMeta:
    return OffsetMeta(total=total, pages=math.ceil(total / per_page), current=page)


def resolve_page_size(requested: int | None, *, settings: Settings, field: str) -> int:
    """The requested page size, the default when absent; over the cap is a 422 naming the field."""
    if requested is None:
        return settings.default_page_size
    if requested > settings.max_page_size:
        raise InvalidParameter(["query", field], f"must be at most {settings.max_page_size}")
    return requested


class InvalidCursor(ValueError):
    """The cursor was not issued by us, was altered, or belongs to another query."""


class CursorCodec:
    """Encodes a keyset position (timestamp, id) bound to the query's filters, signed with HMAC.

    The client sees base64url; tampering with any byte, or replaying a cursor with other filters,
    fails verification instead of silently returning a wrong page.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, *, after: tuple[datetime, int], scope: str) -> str:
        ts, row_id = after
        micros = _micros(ts)
        payload = orjson.dumps([micros, row_id, scope])
        token = payload + self._tag(payload)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str, *, scope: str) -> tuple[datetime, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidCursor("not a cursor issued by this API") from exc
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidCursor("not a cursor issued by this API")
        try:
            decoded = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidCursor("not a cursor issued by this API") from exc
        # The signature proves who wrote the cursor, not what it holds: the development secret is
        # public, so a signed cursor is still checked like any input before it reaches `datetime`
        # or the database (`type(...) is int`: JSON true/false must not pass as 1/0).
        if type(decoded) is not list or len(decoded) != 3:
            raise InvalidCursor("not a cursor issued by this API")
        micros, row_id, cursor_scope = decoded
        if type(cursor_scope) is not str or cursor_scope != scope:
            raise InvalidCursor("this cursor belongs to a query with other filters")
        if type(micros) is not int or not _MIN_MICROS <= micros <= _MAX_MICROS:
            raise InvalidCursor("not a cursor issued by this API")
        if type(row_id) is not int or not 1 <= row_id <= MAX_ROW_ID:
            raise InvalidCursor("not a cursor issued by this API")
        return _EPOCH + timedelta(microseconds=micros), row_id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime) -> int:
    # Integer arithmetic: a float timestamp can be a microsecond off and skip or repeat a row.
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


# What a decoded cursor may hold: instants `datetime` can represent, ids of a BIGINT column.
_MIN_MICROS = _micros(datetime.min.replace(tzinfo=UTC))
_MAX_MICROS = _micros(datetime.max.replace(tzinfo=UTC))
MAX_ROW_ID = 2**63 - 1
