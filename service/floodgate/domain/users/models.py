"""The user model family: Base → Create / Update → User (table) → Public / page."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, EmailStr, field_validator
from sqlmodel import Field, SQLModel

from floodgate.db.columns import ID_TYPE, UTCDateTime, utcnow
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

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class UserUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    name: CleanStr | None = Field(default=None, min_length=1, max_length=100)
    email: EmailStr | None = Field(default=None, max_length=254)

    @field_validator("name", "email", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to keep it; an explicit null cannot be stored.
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None


class UserPublic(UserBase):
    id: int
    created_at: datetime
