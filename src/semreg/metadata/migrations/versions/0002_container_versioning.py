"""Container Versioning: feed settings, tag kind and origin, releases and retired releases.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from semreg.metadata.schema import UTCDateTime, name_type

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DIGEST = sa.String(140)


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(
            sa.Column("container_versioning", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("permitted_tags", sa.JSON, nullable=True))
    with op.batch_alter_table("tags") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="client"))
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="push"))
    op.create_table(
        "releases",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("tag", name_type(128), nullable=False),
        sa.Column("manifest_id", sa.Integer, nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("major", sa.String(130), nullable=False),
        sa.Column("minor", sa.String(130), nullable=False),
        sa.Column("stable", sa.Boolean, nullable=False),
        sa.Column("sort_key", name_type(600), nullable=False),
        sa.Column("pushed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "tag", name="pk_releases"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_releases_repository_id_repositories",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            ondelete="CASCADE",
            name="fk_releases_manifest_id_manifests",
        ),
    )
    op.create_index("ix_releases_line", "releases", ["repository_id", "stable", "sort_key"])
    op.create_index(
        "ix_releases_major", "releases", ["repository_id", "major", "stable", "sort_key"]
    )
    op.create_index(
        "ix_releases_minor", "releases", ["repository_id", "major", "minor", "stable", "sort_key"]
    )
    op.create_table(
        "retired_releases",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("tag", name_type(128), nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("retired_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "tag", name="pk_retired_releases"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            ondelete="CASCADE",
            name="fk_retired_releases_repository_id_repositories",
        ),
    )


def downgrade() -> None:
    op.drop_table("retired_releases")
    op.drop_table("releases")
    with op.batch_alter_table("tags") as batch:
        batch.drop_column("origin")
        batch.drop_column("kind")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("permitted_tags")
        batch.drop_column("container_versioning")
