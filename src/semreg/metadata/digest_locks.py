"""Per-digest locks that fence garbage collection against the writes that reference bytes.

The protocol (argued in ``docs/operations.md``): a transaction that makes a digest referenced
(a manifest row, a blob link, a manifest's reference) first takes that digest's lock *shared*,
then checks that the bytes exist (or that a committed reference to them exists, which implies
it), then commits. Garbage collection takes a digest's lock *exclusively*, checks that nothing
references it, and deletes the bytes before it commits. So a reference is never committed to
bytes that collection deleted, whatever the grace period.

SQLite needs nothing here: every writer holds the database's one write lock (``BEGIN
IMMEDIATE``), so these transactions are serialized already. PostgreSQL uses transaction-scoped
advisory locks, released at commit or rollback. Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.digest import Digest
from semreg.metadata.prepared import Prepared

# The first key of the two-key advisory lock form: semreg's digest locks, apart from any other
# user of advisory locks on the same database (migrations use the one-key form).
_NAMESPACE: Final = 0x5E3EB


def _key(digest: Digest) -> int:
    # 32 bits of the digest; two digests sharing them only wait for each other now and then.
    return int(digest.hex[:8], 16) - 2**31


_SHARE = Prepared(
    lambda _: sa.text(
        "SELECT pg_advisory_xact_lock_shared(:namespace, k) "
        "FROM unnest(CAST(:keys AS integer[])) AS k"
    ).bindparams(
        sa.bindparam("namespace", type_=sa.Integer),
        sa.bindparam("keys", type_=postgresql.ARRAY(sa.Integer)),
    )
)


async def share_digests(conn: AsyncConnection, digests: Iterable[Digest]) -> None:
    """Hold the locks of ``digests`` shared until the transaction ends (before referencing)."""
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({_key(d) for d in digests})
    if keys:
        await _SHARE.rows(conn, namespace=_NAMESPACE, keys=keys)


async def lock_digest(conn: AsyncConnection, digest: Digest) -> None:
    """Hold the lock of ``digest`` exclusively until the transaction ends (before collecting)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
            {"namespace": _NAMESPACE, "key": _key(digest)},
        )
