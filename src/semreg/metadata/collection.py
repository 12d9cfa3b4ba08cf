"""SQL of garbage collection: which digests metadata still needs. Imports: domain, sqlalchemy.

Run ``is_referenced`` and ``forget_blob`` in the transaction that holds the digest's lock
(``metadata.digest_locks.lock_digest``): that is what makes the check still true at the deletion.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.digest import Digest
from semreg.metadata.schema import blobs, manifest_refs, manifests, repository_blobs


async def referenced_digests(conn: AsyncConnection) -> set[str]:
    """Every digest whose bytes metadata still needs: manifests, blob links, references."""
    query = sa.union(
        sa.select(manifests.c.digest),
        sa.select(repository_blobs.c.digest),
        sa.select(manifest_refs.c.digest),
    )
    return set((await conn.execute(query)).scalars())


async def is_referenced(conn: AsyncConnection, digest: Digest) -> bool:
    text = str(digest)
    for column in (manifests.c.digest, repository_blobs.c.digest, manifest_refs.c.digest):
        query = sa.select(sa.literal(1)).where(column == text).limit(1)
        if (await conn.execute(query)).first() is not None:
            return True
    return False


async def forget_blob(conn: AsyncConnection, digest: Digest) -> None:
    await conn.execute(blobs.delete().where(blobs.c.digest == str(digest)))
