"""SQL of upload sessions and their parts.

Every change to a session compares-and-sets its ``version``: of two requests writing one upload,
exactly one records its part, and the other learns it lost (a False or None result) before it
answers its client. Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.inventory import UploadPart, UploadSession
from semreg.metadata.prepared import Prepared, param
from semreg.metadata.repo import now_utc
from semreg.metadata.schema import upload_parts, uploads

_SESSION_COLUMNS = ("id", "repository_id", "size", "version", "owner", "created_at", "updated_at")
_CREATE = Prepared(
    lambda _: uploads.insert().values({c: param(uploads.c[c]) for c in _SESSION_COLUMNS})
)
_COUNT_ACTIVE = Prepared(
    lambda _: (
        sa.select(sa.func.count())
        .select_from(uploads)
        .where(
            uploads.c.owner == param(uploads.c.owner),
            uploads.c.updated_at >= param(uploads.c.updated_at),
        )
    )
)
_FIND = Prepared(
    lambda _: sa.select(
        uploads.c.id,
        uploads.c.repository_id,
        uploads.c.size,
        uploads.c.created_at,
        uploads.c.version,
    ).where(
        uploads.c.id == param(uploads.c.id),
        uploads.c.repository_id == param(uploads.c.repository_id),
    )
)
_PARTS = Prepared(
    lambda _: (
        sa.select(upload_parts.c.name, upload_parts.c.size, upload_parts.c.closed)
        .where(upload_parts.c.upload_id == param(upload_parts.c.upload_id))
        .order_by(upload_parts.c.seq)
    )
)
_ADVANCE = Prepared(
    lambda _: (
        uploads.update()
        .where(
            uploads.c.id == param(uploads.c.id),
            uploads.c.version == param(uploads.c.version, "expected"),
        )
        .values(
            size=param(uploads.c.size),
            version=param(uploads.c.version),
            updated_at=param(uploads.c.updated_at),
        )
    )
)
_GROW_PART = Prepared(
    lambda _: (
        upload_parts.update()
        .where(
            upload_parts.c.upload_id == param(upload_parts.c.upload_id),
            upload_parts.c.name == param(upload_parts.c.name),
        )
        .values(size=param(upload_parts.c.size), closed=param(upload_parts.c.closed))
    )
)


def _add_part() -> sa.Insert:
    following = sa.select(sa.func.coalesce(sa.func.max(upload_parts.c.seq) + 1, 0)).where(
        upload_parts.c.upload_id == param(upload_parts.c.upload_id)
    )
    return upload_parts.insert().values(
        upload_id=param(upload_parts.c.upload_id),
        seq=following.scalar_subquery(),
        name=param(upload_parts.c.name),
        size=param(upload_parts.c.size),
        closed=param(upload_parts.c.closed),
    )


_ADD_PART = Prepared(lambda _: _add_part())
_DELETE = Prepared(lambda _: uploads.delete().where(uploads.c.id == param(uploads.c.id)))
_DELETE_AT = Prepared(
    lambda _: uploads.delete().where(
        uploads.c.id == param(uploads.c.id), uploads.c.version == param(uploads.c.version)
    )
)


async def create_upload(
    conn: AsyncConnection, upload_id: str, repository_id: int, owner: str | None = None
) -> None:
    now = now_utc()
    await _CREATE.execute(
        conn,
        id=upload_id,
        repository_id=repository_id,
        size=0,
        version=0,
        owner=owner,
        created_at=now,
        updated_at=now,
    )


async def count_active_uploads(conn: AsyncConnection, owner: str, since: datetime) -> int:
    """Sessions of ``owner`` written since ``since`` (older ones are abandoned, for gc)."""
    return int(await _COUNT_ACTIVE.scalar(conn, owner=owner, updated_at=since))


async def find_upload(
    conn: AsyncConnection, repository_id: int, upload_id: str
) -> UploadSession | None:
    row = await _FIND.first(conn, id=upload_id, repository_id=repository_id)
    if row is None:
        return None
    found_id, found_repository, size, created_at, version = row
    return UploadSession(found_id, found_repository, size, created_at, version)


async def list_parts(conn: AsyncConnection, upload_id: str) -> list[UploadPart]:
    rows = await _PARTS.rows(conn, upload_id=upload_id)
    return [UploadPart(name, size, bool(closed)) for name, size, closed in rows]


async def record_part(
    conn: AsyncConnection, upload_id: str, version: int, part: UploadPart, size: int
) -> int | None:
    """Record (or grow) ``part`` as the upload's last part and ``size`` as its size, if the upload
    is still at ``version``; the new version, or None when another request changed it first."""
    advanced = await _ADVANCE.execute(
        conn, id=upload_id, expected=version, size=size, version=version + 1, updated_at=now_utc()
    )
    if not advanced:
        return None
    values = {"upload_id": upload_id, "name": part.name, "size": part.size, "closed": part.closed}
    if not await _GROW_PART.execute(conn, **values):
        await _ADD_PART.execute(conn, **values)
    return version + 1


async def delete_upload(conn: AsyncConnection, upload_id: str, version: int | None = None) -> bool:
    """Drop a session (only at ``version`` when given); False when nothing was deleted."""
    # Its parts go with it (ON DELETE CASCADE).
    if version is None:
        return bool(await _DELETE.execute(conn, id=upload_id))
    return bool(await _DELETE_AT.execute(conn, id=upload_id, version=version))


async def list_upload_ids(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(sa.select(uploads.c.id))).scalars())


async def list_stale_uploads(conn: AsyncConnection, older_than: datetime) -> list[str]:
    query = sa.select(uploads.c.id).where(uploads.c.updated_at < older_than)
    return list((await conn.execute(query)).scalars())
