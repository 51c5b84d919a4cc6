"""Alembic migrations of the domain, run by `floodgate migrate` (and by `make run`)."""

from __future__ import annotations

from floodgate.db.migrate import skip_reflected_indexes

# Created only on PostgreSQL with pg_trgm; the models cannot express it, autogenerate must skip it.
PG_ONLY_INDEXES = frozenset({"ix_users_name_trgm"})
include_object = skip_reflected_indexes(PG_ONLY_INDEXES)
