"""Classify database integrity errors portably (asyncpg SQLSTATE codes, SQLite messages)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import IntegrityError

IntegrityKind = Literal["unique", "foreign_key", "other"]


def integrity_kind(exc: IntegrityError) -> IntegrityKind:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == "23505":
        return "unique"
    if code == "23503":
        return "foreign_key"
    text = str(orig).upper()
    if "UNIQUE CONSTRAINT" in text:
        return "unique"
    if "FOREIGN KEY CONSTRAINT" in text:
        return "foreign_key"
    return "other"
