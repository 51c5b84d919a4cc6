"""Run Alembic migrations programmatically (no alembic.ini needed); the domain names the folder."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

# Alembic's `include_object(object, name, type_, reflected, compare_to)` hook of autogenerate.
IncludeObject = Callable[[object, str | None, str, bool, object], bool]


def skip_reflected_indexes(names: Collection[str]) -> IncludeObject:
    """An `include_object` for indexes the models cannot express (created by a migration only,
    e.g. on one backend): autogenerate must not propose to drop them."""

    def include_object(
        _obj: object, name: str | None, type_: str, reflected: bool, _compare_to: object
    ) -> bool:
        return not (type_ == "index" and reflected and name in names)

    return include_object


def alembic_config(
    database_url: str, migrations: Path, connection: Connection | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, migrations: Path, revision: str = "head") -> None:
    """Apply the migrations in the folder `migrations` (its `env.py` and `versions/`)."""
    command.upgrade(alembic_config(database_url, migrations), revision)


def downgrade(database_url: str, migrations: Path, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url, migrations), revision)
