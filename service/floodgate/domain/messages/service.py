"""Data functions for messages.

Creates are one Core `INSERT … RETURNING` on the autocommit engine; updates and deletes go through
the ORM session and commit exactly once here (`delete_messages_of_user` leaves the commit to its
caller). Reads go through the `Reader` and return public models directly: no identity map, no
transaction. Failures are `floodgate.errors`, answered as problems at the edge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from floodgate.db.columns import UTCDateTime, utcnow
from floodgate.db.errors import integrity_kind
from floodgate.db.reads import Reader
from floodgate.domain.messages.models import Message, MessageCreate, MessagePublic, MessageUpdate
from floodgate.errors import NotFoundError, UnknownReferenceError

_table: Table = Message.__table__  # type: ignore[attr-defined]
_ORDER = (_table.c.created_at, _table.c.id)
_BY_ID = select(_table).where(_table.c.id == bindparam("message_id"))
_INSERT = insert(_table).returning(*_table.c)
_BEFORE_ALL = datetime(1, 1, 1, tzinfo=UTC)  # a keyset position before every row


def _missing(message_id: int) -> NotFoundError:
    return NotFoundError(f"message {message_id} does not exist")


async def find_message(reader: Reader, message_id: int) -> MessagePublic | None:
    """The message or None (positional: the cache's direct loader calls it per miss)."""
    row = await reader.fetch_row(_BY_ID, {"message_id": message_id})
    return MessagePublic.model_validate(row) if row is not None else None


async def read_message(*, reader: Reader, message_id: int) -> MessagePublic:
    message = await find_message(reader=reader, message_id=message_id)
    if message is None:
        raise _missing(message_id)
    return message


async def get_message(*, session: AsyncSession, message_id: int) -> Message:
    """The ORM object, for changing it in `session`."""
    message = await session.get(Message, message_id)
    if message is None:
        raise _missing(message_id)
    return message


async def create_message(*, writer: AsyncEngine, message_in: MessageCreate) -> MessagePublic:
    """One `INSERT … RETURNING` on an autocommit connection: the statement is its own transaction,
    so a create costs one round trip (an ORM session's BEGIN, INSERT, COMMIT cost three, and its
    unit of work more CPU than the insert)."""
    now = utcnow()
    values = {
        "body": message_in.body,
        "user_id": message_in.user_id,
        "created_at": now,
        "updated_at": now,
    }
    try:
        async with writer.connect() as conn:
            row = (await conn.execute(_INSERT, values)).one()
    except IntegrityError as exc:
        # The foreign key decides, in the same statement: no extra SELECT on the write path.
        if integrity_kind(exc) == "foreign_key":
            raise UnknownReferenceError(
                "user_id", f"user {message_in.user_id} does not exist"
            ) from exc
        raise
    return MessagePublic.model_validate(row._mapping)


async def update_message(
    *, session: AsyncSession, message_id: int, message_in: MessageUpdate
) -> Message:
    message = await get_message(session=session, message_id=message_id)
    changes = message_in.model_dump(exclude_unset=True)
    if changes:
        message.sqlmodel_update(changes)
        message.updated_at = utcnow()
        await session.commit()
    return message


async def delete_message(*, session: AsyncSession, message_id: int) -> int:
    """Delete the message; returns its user id (whose totals changed)."""
    message = await get_message(session=session, message_id=message_id)
    await session.delete(message)
    await session.commit()
    return message.user_id


async def delete_messages_of_user(*, session: AsyncSession, user_id: int) -> list[int]:
    """Delete every message of a user in `session`, without committing (the caller's transaction
    decides); returns the deleted ids (for cache eviction)."""
    by_user = col(Message.user_id) == user_id
    message_ids = (await session.scalars(select(col(Message.id)).where(by_user))).all()
    await session.execute(delete(Message).where(by_user))
    return [mid for mid in message_ids if mid is not None]


def _user_filter(user_id: int | None) -> list[ColumnElement[bool]]:
    return [] if user_id is None else [_table.c.user_id == user_id]


async def count_messages(*, reader: Reader, user_id: int | None) -> int:
    stmt = select(func.count()).select_from(_table).where(*_user_filter(user_id))
    return int(await reader.scalar(stmt))


@cache
def _page_statement(*, by_user: bool, keyset: bool) -> Select[Any]:
    """One constant statement per page shape (compiled once, see `Reader.fetch_rows`)."""
    stmt = select(_table)
    if by_user:
        stmt = stmt.where(_table.c.user_id == bindparam("user_id", type_=BigInteger()))
    if keyset:
        # Typed parameters so SQLite compares in its stored timestamp format.
        position = tuple_(
            bindparam("after_ts", type_=UTCDateTime()), bindparam("after_id", type_=BigInteger())
        )
        stmt = stmt.where(tuple_(*_ORDER) > position)
    else:
        stmt = stmt.offset(bindparam("offset", type_=BigInteger()))
    return stmt.order_by(*_ORDER).limit(bindparam("limit", type_=Integer()))


async def list_messages_offset(
    *, reader: Reader, user_id: int | None, offset: int, limit: int
) -> list[MessagePublic]:
    stmt = _page_statement(by_user=user_id is not None, keyset=False)
    params = {"user_id": user_id, "offset": offset, "limit": limit}
    return [MessagePublic.model_validate(row) for row in await reader.fetch_rows(stmt, params)]


async def list_messages_after(
    *, reader: Reader, user_id: int | None, after: tuple[datetime, int] | None, limit: int
) -> list[MessagePublic]:
    """Keyset page: rows strictly after `after` in (created_at, id) order; O(limit) at any depth."""
    # The first page is the page after the smallest possible position: one statement for both.
    after_ts, after_id = after if after is not None else (_BEFORE_ALL, 0)
    stmt = _page_statement(by_user=user_id is not None, keyset=True)
    params = {"user_id": user_id, "after_ts": after_ts, "after_id": after_id, "limit": limit}
    return [MessagePublic.model_validate(row) for row in await reader.fetch_rows(stmt, params)]
