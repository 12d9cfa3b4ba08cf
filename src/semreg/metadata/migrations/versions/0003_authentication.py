"""Authentication: users, their feed permissions, API keys, sign-in failures, anonymous view.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from semreg.metadata.schema import UTCDateTime, name_type

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(
            sa.Column("anonymous_view", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", name_type(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("system_apis", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "user_permissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("feed_id", sa.Integer, nullable=True),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_permissions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_user_permissions_user_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], ondelete="CASCADE", name="fk_user_permissions_feed_id_feeds"
        ),
    )
    op.create_index("ix_user_permissions_user_id", "user_permissions", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("feed_id", sa.Integer, nullable=True),
        sa.Column("permissions", sa.JSON, nullable=True),
        sa.Column("system_apis", sa.JSON, nullable=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], ondelete="CASCADE", name="fk_api_keys_feed_id_feeds"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_api_keys_user_id_users"
        ),
    )
    op.create_table(
        "auth_failures",
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("subject", name="pk_auth_failures"),
    )


def downgrade() -> None:
    op.drop_table("auth_failures")
    op.drop_table("api_keys")
    op.drop_table("user_permissions")
    op.drop_table("users")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("anonymous_view")
