"""Run Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
# Created only on PostgreSQL with pg_trgm; the models cannot express it, autogenerate must skip it.
PG_ONLY_INDEXES = frozenset({"ix_users_name_trgm"})


def include_object(
    _obj: object, name: str | None, type_: str, reflected: bool, _compare_to: object
) -> bool:
    return not (type_ == "index" and reflected and name in PG_ONLY_INDEXES)


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
