"""The message model family: Base → Create / Update → Message (table) → Public."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, field_validator
from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from floodgate.db.columns import ID_TYPE, UTCDateTime, utcnow
from floodgate.web.openapi import NON_NULLABLE
from floodgate.web.types import CleanStr, RowId

MAX_BODY_CHARS = 4000


class MessageBase(SQLModel):
    body: CleanStr = Field(min_length=1, max_length=MAX_BODY_CHARS)


class Message(MessageBase, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Keyset pages walk (created_at, id); per-user pages walk the same order within a user.
        Index("ix_messages_created_at_id", "created_at", "id"),
        Index("ix_messages_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    user_id: int = Field(
        sa_column=Column(
            ID_TYPE,
            ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class MessageCreate(MessageBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    user_id: RowId


class MessageUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    body: CleanStr | None = Field(
        default=None, min_length=1, max_length=MAX_BODY_CHARS, schema_extra=NON_NULLABLE
    )

    @field_validator("body", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class MessagePublic(MessageBase):
    id: int
    user_id: int
    created_at: datetime
    updated_at: datetime
