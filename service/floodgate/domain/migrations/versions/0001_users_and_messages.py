"""users and messages

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_index("ix_users_name", "users", ["name"])
    op.create_table(
        "messages",
        sa.Column("body", sa.String(length=4000), nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_messages_created_at_id", "messages", ["created_at", "id"])
    op.create_index(
        "ix_messages_user_id_created_at_id", "messages", ["user_id", "created_at", "id"]
    )
    _create_trigram_index()


def _create_trigram_index() -> None:
    """On PostgreSQL, a trigram GIN index serves `name ILIKE '%term%'` (a b-tree cannot)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        return  # substring search still works, by sequential scan
    # pg_trgm is a trusted extension (PostgreSQL >= 13), but a locked-down role may still lack
    # CREATE on the database: then skip the index rather than fail the whole migration.
    with bind.begin_nested() as savepoint:
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except sa.exc.DBAPIError:
            savepoint.rollback()
            return
    op.execute("CREATE INDEX ix_users_name_trgm ON users USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_users_name_trgm")
    op.drop_index("ix_messages_user_id_created_at_id", table_name="messages")
    op.drop_index("ix_messages_created_at_id", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_users_name", table_name="users")
    op.drop_table("users")
