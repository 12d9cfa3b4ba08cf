"""Promotion history and the history of explicit tag changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from semreg.metadata.schema import UTCDateTime, name_type

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DIGEST = sa.String(140)


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("from_feed", name_type(64), nullable=False),
        sa.Column("to_feed", name_type(64), nullable=False),
        sa.Column("repository", name_type(255), nullable=False),
        sa.Column("version", name_type(128), nullable=False),
        sa.Column("to_version", name_type(128), nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("comments", sa.Text, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("promoted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotions"),
    )
    op.create_index("ix_promotions_from_feed", "promotions", ["from_feed"])
    op.create_index("ix_promotions_to_feed", "promotions", ["to_feed"])
    op.create_table(
        "tag_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("tag", name_type(128), nullable=False),
        sa.Column("old_digest", DIGEST, nullable=True),
        sa.Column("new_digest", DIGEST, nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tag_history"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_tag_history_repository_id_repositories",
        ),
    )
    op.create_index("ix_tag_history_repository_id", "tag_history", ["repository_id"])


def downgrade() -> None:
    op.drop_table("tag_history")
    op.drop_table("promotions")
