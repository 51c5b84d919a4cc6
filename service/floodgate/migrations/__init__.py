"""Alembic migrations, run by `floodgate migrate` (and by `make run`)."""
