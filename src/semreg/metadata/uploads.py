"""SQL of upload sessions and their parts.

Every change to a session compares-and-sets its ``version``: of two requests writing one upload,
exactly one records its part, and the other learns it lost (a False or None result) before it
answers its client. Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.inventory import UploadPart, UploadSession
from semreg.metadata.repo import now_utc
from semreg.metadata.schema import upload_parts, uploads


def _upload(row: sa.Row[Any]) -> UploadSession:
    return UploadSession(
        id=row.id,
        repository_id=row.repository_id,
        size=row.size,
        created_at=row.created_at,
        version=row.version,
    )


async def create_upload(
    conn: AsyncConnection, upload_id: str, repository_id: int, owner: str | None = None
) -> None:
    now = now_utc()
    await conn.execute(
        uploads.insert().values(
            id=upload_id,
            repository_id=repository_id,
            size=0,
            version=0,
            owner=owner,
            created_at=now,
            updated_at=now,
        )
    )


async def count_active_uploads(conn: AsyncConnection, owner: str, since: datetime) -> int:
    """Sessions of ``owner`` written since ``since`` (older ones are abandoned, for gc)."""
    query = (
        sa.select(sa.func.count())
        .select_from(uploads)
        .where(uploads.c.owner == owner, uploads.c.updated_at >= since)
    )
    return int((await conn.execute(query)).scalar_one())


async def find_upload(
    conn: AsyncConnection, repository_id: int, upload_id: str
) -> UploadSession | None:
    query = sa.select(uploads).where(
        uploads.c.id == upload_id, uploads.c.repository_id == repository_id
    )
    row = (await conn.execute(query)).first()
    return _upload(row) if row else None


async def list_parts(conn: AsyncConnection, upload_id: str) -> list[UploadPart]:
    query = (
        sa.select(upload_parts.c.name, upload_parts.c.size, upload_parts.c.closed)
        .where(upload_parts.c.upload_id == upload_id)
        .order_by(upload_parts.c.seq)
    )
    return [UploadPart(name, size, closed) for name, size, closed in await conn.execute(query)]


async def record_part(
    conn: AsyncConnection, upload_id: str, version: int, part: UploadPart, size: int
) -> int | None:
    """Record (or grow) ``part`` as the upload's last part and ``size`` as its size, if the upload
    is still at ``version``; the new version, or None when another request changed it first."""
    result = await conn.execute(
        uploads.update()
        .where(uploads.c.id == upload_id, uploads.c.version == version)
        .values(size=size, version=version + 1, updated_at=now_utc())
    )
    if not result.rowcount:
        return None
    values = {"size": part.size, "closed": part.closed}
    same = (upload_parts.c.upload_id == upload_id) & (upload_parts.c.name == part.name)
    if not (await conn.execute(upload_parts.update().where(same).values(**values))).rowcount:
        following = sa.select(sa.func.coalesce(sa.func.max(upload_parts.c.seq) + 1, 0)).where(
            upload_parts.c.upload_id == upload_id
        )
        await conn.execute(
            upload_parts.insert().values(
                upload_id=upload_id, seq=following.scalar_subquery(), name=part.name, **values
            )
        )
    return version + 1


async def delete_upload(conn: AsyncConnection, upload_id: str, version: int | None = None) -> bool:
    """Drop a session (only at ``version`` when given); False when nothing was deleted."""
    statement = uploads.delete().where(uploads.c.id == upload_id)
    if version is not None:
        statement = statement.where(uploads.c.version == version)
    # Its parts go with it (ON DELETE CASCADE).
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def list_upload_ids(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(sa.select(uploads.c.id))).scalars())


async def list_stale_uploads(conn: AsyncConnection, older_than: datetime) -> list[str]:
    query = sa.select(uploads.c.id).where(uploads.c.updated_at < older_than)
    return list((await conn.execute(query)).scalars())
