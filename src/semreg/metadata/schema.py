"""Table definitions (SQLAlchemy Core). The migrations in ``migrations/`` create these tables;
``tests/unit/metadata/test_migrations.py`` proves both agree. Imports: sqlalchemy, stdlib.

Names and tags compare byte-wise (``COLLATE "C"`` on PostgreSQL; SQLite's default is binary) so
that ``tags/list`` and ``_catalog`` pages are in the lexical order the spec asks for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


def name_type(length: int) -> sa.types.TypeEngine[str]:
    """A string compared byte-wise on every dialect."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


DIGEST = sa.String(140)

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", name_type(64), nullable=False, unique=True),
    sa.Column("feed_type", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("container_versioning", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("permitted_tags", sa.JSON, nullable=True),
    sa.Column("anonymous_view", sa.Boolean, nullable=False, server_default=sa.false()),
)

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("feed_id", sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", name_type(255), nullable=False),
    # "<feed>/<name>", kept for the catalog's ordering and paging; feed names never change.
    sa.Column("full_name", name_type(255), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("feed_id", "name", name="uq_repositories_feed_id_name"),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", DIGEST, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

repository_blobs = sa.Table(
    "repository_blobs",
    metadata,
    sa.Column(
        "repository_id",
        sa.ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("digest", sa.ForeignKey("blobs.digest"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("digest", DIGEST, nullable=False),
    sa.Column("media_type", sa.String(255), nullable=False),
    sa.Column("artifact_type", sa.String(255), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("subject_digest", DIGEST, nullable=True),
    sa.Column("annotations", sa.JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_id_digest"),
    sa.Index("ix_manifests_repository_id_subject_digest", "repository_id", "subject_digest"),
)

# What a manifest points at: its config and layers ("blob") or an index's children ("manifest").
manifest_refs = sa.Table(
    "manifest_refs",
    metadata,
    sa.Column("manifest_id", sa.ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("digest", DIGEST, primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Index("ix_manifest_refs_digest", "digest"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", name_type(128), primary_key=True),
    sa.Column("manifest_id", sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # "client" tags are written by pushes, promotions and retags; "virtual" ones by semreg.
    sa.Column("kind", sa.String(8), nullable=False, server_default="client"),
    # What wrote the tag last: push, promotion, retag or replication (domain.tags.TagOrigin).
    sa.Column("origin", sa.String(16), nullable=False, server_default="push"),
    sa.Index("ix_tags_manifest_id", "manifest_id"),
)

# Live release tags of versioned feeds, one row per tag, ordered by ``sort_key`` (the byte order of
# which is SemVer precedence) so the highest release of a line is one index lookup.
releases = sa.Table(
    "releases",
    metadata,
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", name_type(128), primary_key=True),
    sa.Column("manifest_id", sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("digest", DIGEST, nullable=False),
    # Decimal text: SemVer numbers are unbounded.
    sa.Column("major", sa.String(130), nullable=False),
    sa.Column("minor", sa.String(130), nullable=False),
    sa.Column("stable", sa.Boolean, nullable=False),
    sa.Column("sort_key", name_type(600), nullable=False),
    sa.Column("pushed_at", UTCDateTime, nullable=False),
    sa.Index("ix_releases_line", "repository_id", "stable", "sort_key"),
    sa.Index("ix_releases_major", "repository_id", "major", "stable", "sort_key"),
    sa.Index("ix_releases_minor", "repository_id", "major", "minor", "stable", "sort_key"),
)

# Deleted releases stay reserved: their version cannot be re-published with other content.
retired_releases = sa.Table(
    "retired_releases",
    metadata,
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", name_type(128), primary_key=True),
    sa.Column("digest", DIGEST, nullable=False),
    sa.Column("retired_at", UTCDateTime, nullable=False),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("size", sa.BigInteger, nullable=False),
    # Bumped by every change: writers and the finishing request compare-and-set on it, so of two
    # requests writing one upload exactly one wins (there is no lock to hold, or to lose).
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    # Who started it ("key:7", "user:3", "anonymous"): uploads in progress are limited per owner.
    sa.Column("owner", sa.String(80), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_uploads_owner", "owner"),
)

# The parts an upload is made of, in order: each written by one request into a file of its own;
# ``size`` counts the bytes that are durable and belong to the upload.
upload_parts = sa.Table(
    "upload_parts",
    metadata,
    sa.Column("upload_id", sa.ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # False while its writer may still be appending (a checkpoint), True once it closed the part.
    sa.Column("closed", sa.Boolean, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", name_type(64), nullable=False, unique=True),
    # argon2id, with its parameters and salt in the encoded string.
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("system_apis", sa.JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Random, set at creation: tokens carry it, so a token outlives neither its user nor a
    # re-created user of the same id or name.
    sa.Column("nonce", sa.String(32), nullable=False),
    # SQLite would otherwise hand a deleted row's id to the next row.
    sqlite_autoincrement=True,
)

# A user's feed permissions: one row per feed, or one with feed_id NULL for every feed.
user_permissions = sa.Table(
    "user_permissions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("feed_id", sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=True),
    sa.Column("permissions", sa.JSON, nullable=False),
    sa.Index("ix_user_permissions_user_id", "user_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # SHA-256 of the key text: keys carry 256 random bits, so a fast hash is safe and indexable.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("feed_id", sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=True),
    sa.Column("permissions", sa.JSON, nullable=True),
    sa.Column("system_apis", sa.JSON, nullable=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("nonce", sa.String(32), nullable=False),
    sqlite_autoincrement=True,
)

# Failed sign-ins per (client address, account) in the current window, shared by every process.
# ``subject`` is a SHA-256 of the pair: what a client typed as a user name may be a secret.
auth_failures = sa.Table(
    "auth_failures",
    metadata,
    sa.Column("subject", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=False),
)

# Every promotion between feeds, kept for the history API.
promotions = sa.Table(
    "promotions",
    metadata,
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
    sa.Index("ix_promotions_from_feed", "from_feed"),
    sa.Index("ix_promotions_to_feed", "to_feed"),
)

# Explicit tag changes through the containers API (retags, forced overwrites, deletions).
tag_history = sa.Table(
    "tag_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "repository_id", sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("tag", name_type(128), nullable=False),
    sa.Column("old_digest", DIGEST, nullable=True),
    sa.Column("new_digest", DIGEST, nullable=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_tag_history_repository_id", "repository_id"),
)
