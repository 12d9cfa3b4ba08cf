"""Managing API keys and users: create, list, revoke, grant; the first-start bootstrap key.

Callers have checked that the acting principal may do this. Imports: domain, metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.errors import Conflict, NameUnknown, RequestInvalid
from semreg.domain.names import is_feed_name, parse_feed_name
from semreg.domain.permissions import Permission, SystemApi
from semreg.metadata import principals as store
from semreg.metadata import repo
from semreg.metadata.engine import Database
from semreg.services import lookup
from semreg.services.tokens import KEY_PREFIX, hash_key, hash_password, new_key_text

KEY_TYPES = ("system", "feed", "personal")
_BOOTSTRAP_LOCK = 0x5E3E7


@dataclass(frozen=True, slots=True)
class KeySpec:
    type: str
    display_name: str | None = None
    description: str | None = None
    feed: str | None = None
    permissions: frozenset[Permission] = frozenset()
    system_apis: frozenset[SystemApi] = frozenset()
    user: str | None = None
    expires_at: datetime | None = None


def _check_spec(spec: KeySpec) -> None:
    if spec.type not in KEY_TYPES:
        raise RequestInvalid(
            f"unknown key type {spec.type!r}: use system, feed or personal", {"type": spec.type}
        )
    if spec.type == "feed" and (spec.feed is None or not spec.permissions):
        raise RequestInvalid("a feed key needs a feed and at least one packagePermission")
    if spec.type == "system" and not spec.system_apis:
        raise RequestInvalid("a system key needs systemApis: full-control or feeds")
    if spec.type == "personal" and not spec.user:
        raise RequestInvalid("a personal key needs the user it acts as")


class PrincipalService:
    """API keys and users of one server."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_key(self, spec: KeySpec) -> tuple[store.ApiKeyRow, str]:
        """Create a key; the key text is returned here and never again.

        Raises:
            RequestInvalid: the specification is incomplete or contradictory.
            FeedUnknown: the feed of a feed key does not exist.
            NameUnknown: the user of a personal key does not exist.
        """
        _check_spec(spec)
        text = new_key_text()
        async with self.db.write() as conn:
            feed_id = None
            if spec.type == "feed" and spec.feed is not None:
                feed_id = (await lookup.get_feed(conn, spec.feed, require_active=False)).id
            user_id = None
            if spec.type == "personal" and spec.user is not None:
                user_id = (await self._get_user(conn, spec.user)).id
            row = await store.create_api_key(
                conn,
                key_hash=hash_key(text),
                prefix=text[: len(KEY_PREFIX) + 4],
                key_type=spec.type,
                display_name=spec.display_name,
                description=spec.description,
                feed_id=feed_id,
                permissions=spec.permissions if spec.type == "feed" else (),
                system_apis=spec.system_apis if spec.type == "system" else (),
                user_id=user_id,
                expires_at=spec.expires_at,
            )
        return row, text

    async def list_keys(self) -> list[store.ApiKeyRow]:
        async with self.db.read() as conn:
            return await store.list_api_keys(conn)

    async def find_key(self, key_id: int) -> store.ApiKeyRow | None:
        async with self.db.read() as conn:
            return await store.find_api_key_by_id(conn, key_id)

    async def delete_key(self, key_id: int) -> None:
        """Revoke a key.

        Raises:
            NameUnknown: no key by that id.
        """
        async with self.db.write() as conn:
            if not await store.delete_api_key(conn, key_id):
                raise NameUnknown(f"no API key with id {key_id}", {"id": key_id})

    async def _get_user(self, conn: AsyncConnection, name: str) -> store.UserRow:
        # User names follow the feed-name grammar; other text never reaches SQL.
        user = await store.find_user(conn, name) if is_feed_name(name) else None
        if user is None:
            raise NameUnknown(f"user {name[:80]!r} does not exist", {"user": name[:80]})
        return user

    async def create_user(
        self, name: str, password: str, system_apis: Iterable[SystemApi] = ()
    ) -> store.UserRow:
        """Create a user.

        Raises:
            RequestInvalid: the name or password is unacceptable.
            Conflict: a user by that name exists.
        """
        parse_feed_name(name, "user name")
        if name == "api":
            raise RequestInvalid("'api' is reserved for API-key sign-in", {"user": name})
        if len(password) < 8:
            raise RequestInvalid("passwords need at least 8 characters")
        encoded = hash_password(password)
        async with self.db.write() as conn:
            try:
                return await store.create_user(conn, name, encoded, system_apis)
            except repo.IntegrityConflict as exc:
                raise Conflict(f"user {name!r} already exists", {"user": name}) from exc

    async def list_users(
        self,
    ) -> list[tuple[store.UserRow, dict[str | None, frozenset[Permission]]]]:
        async with self.db.read() as conn:
            users = await store.list_users(conn)
            return [(u, await store.user_feed_permissions(conn, u.id)) for u in users]

    async def delete_user(self, name: str) -> None:
        """Delete a user and its personal keys.

        Raises:
            NameUnknown: no such user.
        """
        async with self.db.write() as conn:
            user = await self._get_user(conn, name)
            await store.delete_user(conn, user.id)

    async def grant(self, name: str, feed: str | None, permissions: Iterable[Permission]) -> None:
        """Set a user's permissions on one feed (or every feed when ``feed`` is None).

        Raises:
            NameUnknown: no such user; FeedUnknown: no such feed.
        """
        async with self.db.write() as conn:
            user = await self._get_user(conn, name)
            feed_id = None
            if feed is not None:
                feed_id = (await lookup.get_feed(conn, feed, require_active=False)).id
            await store.set_user_permissions(conn, user.id, feed_id, permissions)

    async def ensure_bootstrap_key(self, configured: str | None) -> str | None:
        """Make sure an administrator can get in; returns a newly made key to show once.

        With ``configured`` (SEMREG_ADMIN_API_KEY) that key is registered as full control; without
        it, a full-control key is created only when the server has no key at all.
        """
        async with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _BOOTSTRAP_LOCK}
                )
            if configured:
                if await store.find_api_key(conn, hash_key(configured)) is None:
                    await store.create_api_key(
                        conn,
                        key_hash=hash_key(configured),
                        prefix=configured[:11],
                        key_type="system",
                        display_name="bootstrap (SEMREG_ADMIN_API_KEY)",
                        description=None,
                        feed_id=None,
                        permissions=(),
                        system_apis=(SystemApi.FULL_CONTROL,),
                        user_id=None,
                        expires_at=None,
                    )
                return None
            if await store.count_api_keys(conn):
                return None
            text = new_key_text()
            await store.create_api_key(
                conn,
                key_hash=hash_key(text),
                prefix=text[: len(KEY_PREFIX) + 4],
                key_type="system",
                display_name="bootstrap administrator",
                description="created on first start",
                feed_id=None,
                permissions=(),
                system_apis=(SystemApi.FULL_CONTROL,),
                user_id=None,
                expires_at=None,
            )
            return text
