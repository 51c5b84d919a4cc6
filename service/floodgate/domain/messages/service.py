"""Data functions for messages. They own the transaction: each write commits exactly once here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, func, literal, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from floodgate.domain.common import UTCDateTime, utcnow
from floodgate.domain.errors import integrity_kind
from floodgate.domain.messages.models import Message, MessageCreate, MessageUpdate
from floodgate.problems import InvalidParameter, NotFound


async def get_message(*, session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


async def create_message(*, session: AsyncSession, message_in: MessageCreate) -> Message:
    message = Message.model_validate(message_in)
    session.add(message)
    try:
        await session.commit()
    except IntegrityError as exc:
        # The foreign key decides, in the same statement: no extra SELECT on the write path.
        await session.rollback()
        if integrity_kind(exc) == "foreign_key":
            raise InvalidParameter(
                ["body", "user_id"], f"user {message_in.user_id} does not exist"
            ) from exc
        raise
    return message


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


async def delete_message(*, session: AsyncSession, message_id: int) -> None:
    message = await get_message(session=session, message_id=message_id)
    await session.delete(message)
    await session.commit()


def _user_filter(user_id: int | None) -> list[ColumnElement[bool]]:
    return [] if user_id is None else [col(Message.user_id) == user_id]


async def count_messages(*, session: AsyncSession, user_id: int | None) -> int:
    stmt = select(func.count()).select_from(Message).where(*_user_filter(user_id))
    return int((await session.execute(stmt)).scalar_one())


_ORDER = (col(Message.created_at), col(Message.id))


async def list_messages_offset(
    *, session: AsyncSession, user_id: int | None, offset: int, limit: int
) -> Sequence[Message]:
    stmt = (
        select(Message).where(*_user_filter(user_id)).order_by(*_ORDER).offset(offset).limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def list_messages_after(
    *, session: AsyncSession, user_id: int | None, after: tuple[datetime, int] | None, limit: int
) -> Sequence[Message]:
    """Keyset page: rows strictly after `after` in (created_at, id) order; O(limit) at any depth."""
    stmt = select(Message).where(*_user_filter(user_id))
    if after is not None:
        # Typed literals so SQLite compares in its stored timestamp format.
        position = tuple_(literal(after[0], UTCDateTime()), literal(after[1], BigInteger()))
        stmt = stmt.where(tuple_(*_ORDER) > position)
    stmt = stmt.order_by(*_ORDER).limit(limit)
    return (await session.scalars(stmt)).all()
