"""SQL for users, API keys, their permissions and sign-in failures.

Key and password material arrives here already hashed. Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.permissions import Permission, SystemApi
from semreg.metadata.repo import IntegrityConflict, dialect_insert, now_utc
from semreg.metadata.schema import api_keys, auth_failures, feeds, user_permissions, users


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    system_apis: frozenset[SystemApi]
    created_at: datetime
    nonce: str


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: int
    prefix: str
    type: str
    display_name: str | None
    description: str | None
    feed: str | None
    permissions: frozenset[Permission]
    system_apis: frozenset[SystemApi]
    user_id: int | None
    user: str | None
    expires_at: datetime | None
    created_at: datetime
    nonce: str


def _user(row: sa.Row[Any]) -> UserRow:
    return UserRow(
        id=row.id,
        name=row.name,
        password_hash=row.password_hash,
        system_apis=frozenset(SystemApi(a) for a in row.system_apis or ()),
        created_at=row.created_at,
        nonce=row.nonce,
    )


def new_nonce() -> str:
    """What only this principal has: tokens carry it, so none outlives or changes its owner."""
    return secrets.token_hex(16)


# --- users -------------------------------------------------------------------------------------


async def create_user(
    conn: AsyncConnection, name: str, password_hash: str, system_apis: Iterable[SystemApi]
) -> UserRow:
    try:
        result = await conn.execute(
            users.insert()
            .values(
                name=name,
                password_hash=password_hash,
                system_apis=sorted(system_apis),
                created_at=now_utc(),
                nonce=new_nonce(),
            )
            .returning(*users.c)
        )
    except IntegrityError as exc:
        raise IntegrityConflict(name) from exc
    return _user(result.one())


async def find_user(conn: AsyncConnection, name: str) -> UserRow | None:
    row = (await conn.execute(sa.select(users).where(users.c.name == name))).first()
    return _user(row) if row else None


async def find_user_by_id(conn: AsyncConnection, user_id: int) -> UserRow | None:
    row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[UserRow]:
    return [_user(row) for row in await conn.execute(sa.select(users).order_by(users.c.name))]


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(users.delete().where(users.c.id == user_id))


async def set_user_password(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    # A new nonce: tokens obtained with the old password stop working.
    await conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, nonce=new_nonce())
    )


async def set_user_permissions(
    conn: AsyncConnection, user_id: int, feed_id: int | None, permissions: Iterable[Permission]
) -> None:
    """Replace a user's permissions on one feed (``None``: on every feed)."""
    same_feed = (
        user_permissions.c.feed_id.is_(None)
        if feed_id is None
        else user_permissions.c.feed_id == feed_id
    )
    await conn.execute(
        user_permissions.delete().where(user_permissions.c.user_id == user_id, same_feed)
    )
    chosen = sorted(permissions)
    if chosen:
        await conn.execute(
            user_permissions.insert().values(user_id=user_id, feed_id=feed_id, permissions=chosen)
        )


async def user_feed_permissions(
    conn: AsyncConnection, user_id: int
) -> dict[str | None, frozenset[Permission]]:
    """Feed name (``None`` for every feed) -> permissions of a user."""
    query = (
        sa.select(feeds.c.name, user_permissions.c.permissions)
        .select_from(user_permissions.outerjoin(feeds))
        .where(user_permissions.c.user_id == user_id)
    )
    out: dict[str | None, frozenset[Permission]] = {}
    for feed, permissions in await conn.execute(query):
        out[feed] = out.get(feed, frozenset()) | frozenset(Permission(p) for p in permissions)
    return out


# --- API keys ----------------------------------------------------------------------------------


def _key_query() -> sa.Select[Any]:
    return sa.select(
        api_keys,
        feeds.c.name.label("feed_name"),
        users.c.name.label("user_name"),
    ).select_from(api_keys.outerjoin(feeds).outerjoin(users))


def _key(row: sa.Row[Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=row.id,
        prefix=row.prefix,
        type=row.type,
        display_name=row.display_name,
        description=row.description,
        feed=row.feed_name,
        permissions=frozenset(Permission(p) for p in row.permissions or ()),
        system_apis=frozenset(SystemApi(a) for a in row.system_apis or ()),
        user_id=row.user_id,
        user=row.user_name,
        expires_at=row.expires_at,
        created_at=row.created_at,
        nonce=row.nonce,
    )


async def create_api_key(
    conn: AsyncConnection,
    *,
    key_hash: str,
    prefix: str,
    key_type: str,
    display_name: str | None,
    description: str | None,
    feed_id: int | None,
    permissions: Iterable[Permission],
    system_apis: Iterable[SystemApi],
    user_id: int | None,
    expires_at: datetime | None,
) -> ApiKeyRow:
    result = await conn.execute(
        api_keys.insert()
        .values(
            key_hash=key_hash,
            prefix=prefix,
            type=key_type,
            display_name=display_name,
            description=description,
            feed_id=feed_id,
            permissions=sorted(permissions),
            system_apis=sorted(system_apis),
            user_id=user_id,
            expires_at=expires_at,
            created_at=now_utc(),
            nonce=new_nonce(),
        )
        .returning(api_keys.c.id)
    )
    key_id = result.scalar_one()
    row = (await conn.execute(_key_query().where(api_keys.c.id == key_id))).one()
    return _key(row)


async def find_api_key(conn: AsyncConnection, key_hash: str) -> ApiKeyRow | None:
    row = (await conn.execute(_key_query().where(api_keys.c.key_hash == key_hash))).first()
    return _key(row) if row else None


async def find_api_key_by_id(conn: AsyncConnection, key_id: int) -> ApiKeyRow | None:
    row = (await conn.execute(_key_query().where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def list_api_keys(conn: AsyncConnection) -> list[ApiKeyRow]:
    return [_key(row) for row in await conn.execute(_key_query().order_by(api_keys.c.id))]


async def delete_api_key(conn: AsyncConnection, key_id: int) -> bool:
    result = await conn.execute(api_keys.delete().where(api_keys.c.id == key_id))
    return bool(result.rowcount)


async def count_api_keys(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(api_keys))).scalar_one())


# --- sign-in failures --------------------------------------------------------------------------


async def count_failure(conn: AsyncConnection, subject: str, window: timedelta) -> int:
    """Count one more attempt for ``subject`` in the current window and return the count.

    Counted before the password is checked, in one statement, so parallel guesses cannot all
    slip in under the limit.
    """
    await record_failure(conn, subject, window)
    query = sa.select(auth_failures.c.failures).where(auth_failures.c.subject == subject)
    return int((await conn.execute(query)).scalar_one())


async def record_failure(conn: AsyncConnection, subject: str, window: timedelta) -> None:
    now = now_utc()
    statement = dialect_insert(conn, auth_failures).values(
        subject=subject, failures=1, window_start=now
    )
    expired = auth_failures.c.window_start <= now - window
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[auth_failures.c.subject],
            set_={
                "failures": sa.case((expired, 1), else_=auth_failures.c.failures + 1),
                "window_start": sa.case((expired, now), else_=auth_failures.c.window_start),
            },
        )
    )


async def clear_failures(conn: AsyncConnection, subject: str) -> None:
    """A sign-in succeeded: the attempts counted so far are forgotten."""
    await conn.execute(auth_failures.delete().where(auth_failures.c.subject == subject))
