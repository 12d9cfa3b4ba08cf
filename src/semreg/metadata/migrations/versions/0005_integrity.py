"""Integrity: uploads made of parts, identities never reused, sign-in failures kept hashed.

- ``uploads`` loses its writer lease for a ``version`` compared-and-set by every writer and gets
  the ``owner`` its count per principal is limited by, and
  ``upload_parts`` records which parts make up each upload. Uploads in progress are dropped (their
  bytes are in the old layout; ``semreg gc`` removes them): clients start those uploads again.
- ``users`` and ``api_keys`` get a random ``nonce`` that tokens carry, and on SQLite become
  ``AUTOINCREMENT`` tables, so a deleted row's id is never handed out again. Rebuilding a SQLite
  table drops the old one, which would cascade to the rows that refer to it: those are set aside
  in temporary tables and put back.
- ``auth_failures`` keys become SHA-256 digests; the failures counted so far are dropped.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from semreg.metadata.schema import UTCDateTime, name_type

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEY_COLUMNS = (
    "id, key_hash, prefix, type, display_name, description, feed_id, permissions, system_apis, "
    "user_id, expires_at, created_at"
)


def _add_nonces(table: str) -> None:
    bind = op.get_bind()
    ids = [row[0] for row in bind.execute(sa.text(f"SELECT id FROM {table}"))]  # noqa: S608
    for row_id in ids:
        bind.execute(
            sa.text(f"UPDATE {table} SET nonce = :nonce WHERE id = :id"),  # noqa: S608
            {"nonce": secrets.token_hex(16), "id": row_id},
        )


def _uploads() -> None:
    op.execute("DELETE FROM uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("lease_token")
        batch.drop_column("lease_at")
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("owner", sa.String(80), nullable=True))
        batch.create_index("ix_uploads_owner", ["owner"])
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "seq", name="pk_upload_parts"),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            ondelete="CASCADE",
            name="fk_upload_parts_upload_id_uploads",
        ),
    )


def _principals_postgresql() -> None:
    for table in ("users", "api_keys"):
        op.add_column(table, sa.Column("nonce", sa.String(32), nullable=True))
        _add_nonces(table)
        op.alter_column(table, "nonce", nullable=False)


def _principal_tables() -> None:
    """``users`` and ``api_keys`` as of this revision, ids never reused (SQLite AUTOINCREMENT)."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", name_type(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("system_apis", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sqlite_autoincrement=True,
    )
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
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], ondelete="CASCADE", name="fk_api_keys_feed_id_feeds"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_api_keys_user_id_users"
        ),
        sqlite_autoincrement=True,
    )


def _principals_sqlite() -> None:
    # Dropping a table that rows refer to would cascade to them: every row of the three tables
    # is set aside first, and put back into the new tables with its id.
    for table in ("users", "api_keys", "user_permissions"):
        op.execute(f"CREATE TEMP TABLE keep_{table} AS SELECT * FROM {table}")  # noqa: S608
    for table in ("user_permissions", "api_keys", "users"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608
    op.drop_index("ix_user_permissions_user_id", "user_permissions")
    op.drop_table("user_permissions")
    op.drop_table("api_keys")
    op.drop_table("users")
    _principal_tables()
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
    op.execute(
        "INSERT INTO users (id, name, password_hash, system_apis, created_at, nonce) "
        "SELECT id, name, password_hash, system_apis, created_at, '' FROM keep_users"
    )
    op.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}, nonce) "  # noqa: S608
        f"SELECT {_KEY_COLUMNS}, '' FROM keep_api_keys"
    )
    op.execute("INSERT INTO user_permissions SELECT * FROM keep_user_permissions")
    for table in ("users", "api_keys", "user_permissions"):
        op.execute(f"DROP TABLE keep_{table}")
    _add_nonces("users")
    _add_nonces("api_keys")


def upgrade() -> None:
    _uploads()
    if op.get_bind().dialect.name == "postgresql":
        _principals_postgresql()
    else:
        _principals_sqlite()
    op.execute("DELETE FROM auth_failures")
    with op.batch_alter_table("auth_failures") as batch:
        batch.alter_column("subject", type_=sa.String(64), existing_type=sa.String(300))


def downgrade() -> None:
    raise NotImplementedError("semreg migrations only go forward")
