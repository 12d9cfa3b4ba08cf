"""Integrity: uploads made of parts, identities never reused, sign-in failures kept hashed.

- ``uploads`` loses its writer lease for a ``version`` compared-and-set by every writer, and
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


def _principals_sqlite() -> None:
    op.execute("CREATE TEMP TABLE keep_user_permissions AS SELECT * FROM user_permissions")
    op.execute(f"CREATE TEMP TABLE keep_api_keys AS SELECT {_KEY_COLUMNS} FROM api_keys")  # noqa: S608
    op.execute("DELETE FROM user_permissions")
    op.execute("DELETE FROM api_keys")
    for table in ("users", "api_keys"):
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.add_column(sa.Column("nonce", sa.String(32), nullable=False, server_default=""))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("nonce", server_default=None)
    _add_nonces("users")
    op.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}, nonce) "  # noqa: S608
        f"SELECT {_KEY_COLUMNS}, '' FROM keep_api_keys"
    )
    _add_nonces("api_keys")
    op.execute("INSERT INTO user_permissions SELECT * FROM keep_user_permissions")
    op.execute("DROP TABLE keep_user_permissions")
    op.execute("DROP TABLE keep_api_keys")


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
