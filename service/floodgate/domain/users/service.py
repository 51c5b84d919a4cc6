"""Data functions for users.

Creates are one Core `INSERT … RETURNING` on the autocommit engine; updates and deletes go through
the ORM session and commit exactly once here; reads go through the `Reader` and return public
models (see the messages service). Failures are `floodgate.errors`, answered at the edge.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from floodgate.db.columns import escape_like, utcnow
from floodgate.db.errors import integrity_kind
from floodgate.db.reads import Reader
from floodgate.domain.messages import service as messages
from floodgate.domain.users.models import User, UserCreate, UserPublic, UserUpdate
from floodgate.errors import ConflictError, NotFoundError

_table: Table = User.__table__  # type: ignore[attr-defined]
_BY_ID = select(_table).where(_table.c.id == bindparam("user_id"))
_INSERT = insert(_table).returning(*_table.c)


def _duplicate(email: str) -> ConflictError:
    return ConflictError(f"a user with email {email!r} already exists")


def _missing(user_id: int) -> NotFoundError:
    return NotFoundError(f"user {user_id} does not exist")


async def find_user(reader: Reader, user_id: int) -> UserPublic | None:
    """The user or None (positional: the cache's direct loader calls it per miss)."""
    row = await reader.fetch_row(_BY_ID, {"user_id": user_id})
    return UserPublic.model_validate(row) if row is not None else None


async def read_user(*, reader: Reader, user_id: int) -> UserPublic:
    user = await find_user(reader=reader, user_id=user_id)
    if user is None:
        raise _missing(user_id)
    return user


async def get_user(*, session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise _missing(user_id)
    return user


async def create_user(*, writer: AsyncEngine, user_in: UserCreate) -> UserPublic:
    """One `INSERT … RETURNING`, its own transaction (see `messages.service.create_message`)."""
    values = {"name": user_in.name, "email": user_in.email, "created_at": utcnow()}
    try:
        async with writer.connect() as conn:
            row = (await conn.execute(_INSERT, values)).one()
    except IntegrityError as exc:
        if integrity_kind(exc) == "unique":
            raise _duplicate(user_in.email) from exc
        raise
    return UserPublic.model_validate(row._mapping)


async def update_user(*, session: AsyncSession, user_id: int, user_in: UserUpdate) -> User:
    user = await get_user(session=session, user_id=user_id)
    user.sqlmodel_update(user_in.model_dump(exclude_unset=True))
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if integrity_kind(exc) == "unique" and user_in.email is not None:
            raise _duplicate(user_in.email) from exc
        raise
    return user


async def delete_user(*, session: AsyncSession, user_id: int) -> list[int]:
    """Delete a user and their messages; returns the deleted message ids (for cache eviction)."""
    await get_user(session=session, user_id=user_id)
    message_ids = await messages.delete_messages_of_user(session=session, user_id=user_id)
    await session.execute(delete(User).where(col(User.id) == user_id))
    await session.commit()  # the messages and the user in one transaction
    return message_ids


def _name_filter(name: str | None) -> list[ColumnElement[bool]]:
    if not name:
        return []
    return [_table.c.name.ilike(f"%{escape_like(name)}%", escape="\\")]


async def count_users(*, reader: Reader, name: str | None) -> int:
    stmt = select(func.count()).select_from(_table).where(*_name_filter(name))
    return int(await reader.scalar(stmt))


async def list_users(
    *, reader: Reader, name: str | None, offset: int, limit: int
) -> list[UserPublic]:
    stmt = (
        select(_table).where(*_name_filter(name)).order_by(_table.c.id).offset(offset).limit(limit)
    )
    return [UserPublic.model_validate(row) for row in await reader.query(stmt)]
