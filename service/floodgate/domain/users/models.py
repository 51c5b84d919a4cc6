"""The user model family: Base → Create / Update → User (table) → Public / page."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, EmailStr, field_validator
from sqlmodel import Field, SQLModel

from floodgate.db.columns import ID_TYPE, UTCDateTime, utcnow
from floodgate.domain.users.emails import Email
from floodgate.web.openapi import NON_NULLABLE
from floodgate.web.types import CleanStr


class UserBase(SQLModel):
    name: CleanStr = Field(min_length=1, max_length=100, index=True)
    email: EmailStr = Field(max_length=254, unique=True)


class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class UserCreate(UserBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    email: Email  # the stored form: see floodgate.domain.users.emails


class UserUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    # Optional but not nullable, in the document too (NON_NULLABLE drops the null branch).
    name: CleanStr | None = Field(
        default=None, min_length=1, max_length=100, schema_extra=NON_NULLABLE
    )
    email: Email | None = Field(default=None, schema_extra=NON_NULLABLE)

    @field_validator("name", "email", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to keep it; an explicit null cannot be stored.
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class UserPublic(UserBase):
    # Stored addresses keep internationalised domains as U-labels: documented as `idn-email`.
    email: EmailStr = Field(
        max_length=254, schema_extra={"json_schema_extra": {"format": "idn-email"}}
    )
    id: int
    created_at: datetime
