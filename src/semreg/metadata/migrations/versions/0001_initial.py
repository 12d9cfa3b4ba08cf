"""Feeds, repositories, blobs, manifests, tags and upload sessions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from semreg.metadata.schema import UTCDateTime, name_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DIGEST = sa.String(140)


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", name_type(64), nullable=False),
        sa.Column("feed_type", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feeds"),
        sa.UniqueConstraint("name", name="uq_feeds_name"),
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feed_id", sa.Integer, nullable=False),
        sa.Column("name", name_type(255), nullable=False),
        sa.Column("full_name", name_type(255), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_repositories"),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], ondelete="CASCADE", name="fk_repositories_feed_id_feeds"
        ),
        sa.UniqueConstraint("feed_id", "name", name="uq_repositories_feed_id_name"),
        sa.UniqueConstraint("full_name", name="uq_repositories_full_name"),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_blobs"),
    )
    op.create_table(
        "repository_blobs",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "digest", name="pk_repository_blobs"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_repository_blobs_repository_id_repositories",
        ),
        sa.ForeignKeyConstraint(
            ["digest"], ["blobs.digest"], name="fk_repository_blobs_digest_blobs"
        ),
    )
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("subject_digest", DIGEST, nullable=True),
        sa.Column("annotations", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_manifests"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_manifests_repository_id_repositories",
        ),
        sa.UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_id_digest"),
    )
    op.create_index(
        "ix_manifests_repository_id_subject_digest",
        "manifests",
        ["repository_id", "subject_digest"],
    )
    op.create_table(
        "manifest_refs",
        sa.Column("manifest_id", sa.Integer, nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("manifest_id", "digest", "kind", name="pk_manifest_refs"),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            ondelete="CASCADE",
            name="fk_manifest_refs_manifest_id_manifests",
        ),
    )
    op.create_index("ix_manifest_refs_digest", "manifest_refs", ["digest"])
    op.create_table(
        "tags",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("name", name_type(128), nullable=False),
        sa.Column("manifest_id", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "name", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_tags_repository_id_repositories",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            ondelete="CASCADE",
            name="fk_tags_manifest_id_manifests",
        ),
    )
    op.create_index("ix_tags_manifest_id", "tags", ["manifest_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("lease_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_uploads_repository_id_repositories",
        ),
    )


def downgrade() -> None:
    for table in (
        "uploads",
        "tags",
        "manifest_refs",
        "manifests",
        "repository_blobs",
        "blobs",
        "repositories",
        "feeds",
    ):
        op.drop_table(table)
