"""Hot-path reads: a manifest by tag or digest, a blob's size in a repository.

They bypass SQLAlchemy's execution and aiosqlite's thread hand-off (most of a GET's cost):
the statements are built here with Core, compiled once per dialect, and run on the driver.

SQLite: one synchronous connection per process, ``query_only``, used from the event-loop
thread. Each lookup is one short WAL read; WAL readers never wait for writers.

**Invalidation rule (SQLite).** An answer is served from the cache only while ``PRAGMA
data_version`` of that connection still has the value it had when the answer was read. SQLite
changes that value whenever any *other* connection, in this process or another, commits, and
a commit is visible before the writer's ``COMMIT`` returns, so before the write is
acknowledged to anyone. A request that starts after a tag moved therefore never gets an
answer cached before the move, whichever process moved it. Any commit clears the whole cache:
coarse, and right without knowing which writes touch which rows.

PostgreSQL: an asyncpg pool per process with prepared statements, and no cache: nothing
cheaper than a query tells one process that another has committed.

A lookup that fails (busy database, lost connection) returns ``UNSURE``: the caller takes
the ordinary path, which has its own error handling. Imports: domain, sqlalchemy, drivers.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.inventory import ManifestHead
from semreg.domain.names import Reference, RepoPath
from semreg.metadata.schema import blobs, feeds, manifests, repositories, repository_blobs, tags

if TYPE_CHECKING:  # imported when PostgreSQL is used: a SQLite server never loads it
    import asyncpg


class Unsure(Enum):
    UNSURE = "unsure"


UNSURE: Final = Unsure.UNSURE
_CACHE_ENTRIES: Final = 4096
_SQLITE_BUSY_MS: Final = 50

_REPOSITORY_ID = (
    sa.select(repositories.c.id)
    .join(feeds, repositories.c.feed_id == feeds.c.id)
    .where(
        feeds.c.name == sa.bindparam("feed"),
        feeds.c.active.is_(True),
        repositories.c.name == sa.bindparam("repo"),
    )
    .scalar_subquery()
)
_HEAD = (manifests.c.digest, manifests.c.media_type, manifests.c.size)
BY_TAG: Final = (
    sa.select(*_HEAD)
    .select_from(tags.join(manifests, tags.c.manifest_id == manifests.c.id))
    .where(tags.c.repository_id == _REPOSITORY_ID, tags.c.name == sa.bindparam("ref"))
)
BY_DIGEST: Final = sa.select(*_HEAD).where(
    manifests.c.repository_id == _REPOSITORY_ID, manifests.c.digest == sa.bindparam("ref")
)
ANONYMOUS_FEEDS: Final = sa.select(feeds.c.name).where(
    feeds.c.anonymous_view.is_(True), feeds.c.active.is_(True)
)
BLOB_SIZE: Final = (
    sa.select(blobs.c.size)
    .select_from(repository_blobs.join(blobs))
    .where(
        repository_blobs.c.repository_id == _REPOSITORY_ID,
        repository_blobs.c.digest == sa.bindparam("ref"),
    )
)


class Statement:
    """A Core statement compiled once for one dialect, with its positional parameter order."""

    def __init__(self, statement: sa.Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order: Sequence[str] = tuple(compiled.positiontup or ())

    def args(self, **values: str) -> tuple[str, ...]:
        return tuple(values[name] for name in self.order)


Row = tuple[Any, ...]


class HotReads(Protocol):
    async def manifest(self, path: RepoPath, reference: Reference) -> ManifestHead | Unsure | None:
        """The manifest ``reference`` names in ``path`` (an active feed), None if none."""

    async def blob_size(self, path: RepoPath, digest: Digest) -> int | Unsure | None:
        """The size of a blob linked into ``path`` (an active feed), None if not linked."""

    async def anonymous_feeds(self) -> tuple[str, ...] | Unsure:
        """The active feeds anonymous callers may view."""

    async def close(self) -> None: ...


def _compiled(dialect: Dialect) -> dict[str, Statement]:
    return {
        "tag": Statement(BY_TAG, dialect),
        "digest": Statement(BY_DIGEST, dialect),
        "blob": Statement(BLOB_SIZE, dialect),
        "anonymous": Statement(ANONYMOUS_FEEDS, dialect),
    }


def _kind(reference: Reference) -> tuple[str, str]:
    if isinstance(reference, Digest):
        return "digest", str(reference)
    return "tag", reference.name


def _head(row: Row | Unsure | None) -> ManifestHead | Unsure | None:
    if row is None or isinstance(row, Unsure):
        return row
    return ManifestHead(digest=parse_digest(row[0]), media_type=row[1], size=int(row[2]))


def _size(row: Row | Unsure | None) -> int | Unsure | None:
    if row is None or isinstance(row, Unsure):
        return row
    return int(row[0])


class SqliteHotReads:
    """Lookups on a private synchronous connection, cached per ``data_version``."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        self._conn.execute("PRAGMA query_only=1")
        self._by = _compiled(sqlite.dialect())
        self._version = -1
        self._cache: dict[tuple[str, str, str, str], Row | None] = {}

    def _fresh_cache(self) -> dict[tuple[str, str, str, str], Row | None]:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version or len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
            self._version = version
        return self._cache

    def _lookup(self, kind: str, path: RepoPath, ref: str) -> Row | Unsure | None:
        key = (kind, path.feed, path.repo, ref)
        try:
            cache = self._fresh_cache()
            if key in cache:
                return cache[key]
            statement = self._by[kind]
            found: Row | None = self._conn.execute(
                statement.sql, statement.args(feed=path.feed, repo=path.repo, ref=ref)
            ).fetchone()
        except sqlite3.Error:
            return UNSURE
        cache[key] = found
        return found

    async def manifest(self, path: RepoPath, reference: Reference) -> ManifestHead | Unsure | None:
        kind, ref = _kind(reference)
        return _head(self._lookup(kind, path, ref))

    async def blob_size(self, path: RepoPath, digest: Digest) -> int | Unsure | None:
        return _size(self._lookup("blob", path, str(digest)))

    async def anonymous_feeds(self) -> tuple[str, ...] | Unsure:
        key = ("anonymous", "", "", "")
        try:
            cache = self._fresh_cache()
            if key not in cache:
                rows = self._conn.execute(self._by["anonymous"].sql).fetchall()
                cache[key] = tuple(row[0] for row in rows)
        except sqlite3.Error:
            return UNSURE
        found = cache[key]
        assert found is not None
        return found

    async def close(self) -> None:
        self._conn.close()


class PostgresHotReads:
    """Lookups through a small asyncpg pool of prepared statements."""

    def __init__(self, pool: asyncpg.Pool, dialect: Dialect) -> None:
        import asyncpg

        self._pool = pool
        self._by = _compiled(dialect)
        self._failures = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def _lookup(self, kind: str, path: RepoPath, ref: str) -> Row | Unsure | None:
        statement = self._by[kind]
        try:
            row = await self._pool.fetchrow(
                statement.sql, *statement.args(feed=path.feed, repo=path.repo, ref=ref)
            )
        except self._failures:
            return UNSURE
        return None if row is None else tuple(row)

    async def manifest(self, path: RepoPath, reference: Reference) -> ManifestHead | Unsure | None:
        kind, ref = _kind(reference)
        return _head(await self._lookup(kind, path, ref))

    async def blob_size(self, path: RepoPath, digest: Digest) -> int | Unsure | None:
        return _size(await self._lookup("blob", path, str(digest)))

    async def anonymous_feeds(self) -> tuple[str, ...] | Unsure:
        try:
            rows = await self._pool.fetch(self._by["anonymous"].sql)
        except self._failures:
            return UNSURE
        return tuple(row[0] for row in rows)

    async def close(self) -> None:
        await self._pool.close()


async def open_hot_reads(engine: AsyncEngine, pool_size: int = 4) -> HotReads | None:
    """The hot-path reads of ``engine``'s database for this process; None for a SQLite
    database that is not a plain file (``:memory:``, ``file:`` URIs): the engine serves those."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return SqliteHotReads(path)
    import asyncpg

    args, options = engine.dialect.create_connect_args(engine.url)
    # The URL may carry SQLAlchemy's own asyncpg options (prepared_statement_cache_size...),
    # which asyncpg.connect does not take; a statement cache of 0 there means a pooler that
    # cannot keep prepared statements, so the pool gets none either.
    accepted = inspect.signature(asyncpg.connect).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    if options.get("prepared_statement_cache_size") == 0:
        kwargs["statement_cache_size"] = 0
    pool = await asyncpg.create_pool(*args, min_size=1, max_size=pool_size, **kwargs)
    return PostgresHotReads(pool, engine.dialect)
