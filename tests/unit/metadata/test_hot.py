"""The hot-path reads of ``semreg.metadata.hot`` agree with the database after every commit.

Each test commits through the ordinary engine (``Database.write``), as another request or
another process would, and asks the hot reads right after: an answer cached before a commit
must never be served after it. On SQLite the statements the hot connection runs are counted,
to show that an unchanged database is answered from the cache.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from semreg.domain.digest import compute_digest
from semreg.domain.inventory import ManifestHead, StoredManifest
from semreg.domain.names import RepoPath, Tag
from semreg.domain.tags import TagPolicy
from semreg.metadata import repo
from semreg.metadata.engine import Database, create_engine
from semreg.metadata.hot import UNSURE, SqliteHotReads, open_hot_reads
from semreg.metadata.migrate import upgrade
from semreg.metadata.schema import feeds
from semreg.services.manifests import ManifestService
from semreg.storage.memory import MemoryBlobStore
from tests.unit.metadata import BACKENDS, fresh_database

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def _push(db: Database, path: RepoPath, tag: str, seed: str) -> ManifestHead:
    """A manifest tagged ``tag`` in ``path``, committed (the feed made on first use)."""
    digest = compute_digest(seed.encode())
    async with db.write() as conn:
        feed = await repo.find_feed(conn, path.feed)
        if feed is None:
            feed = await repo.create_feed(conn, path.feed, "docker", True, None, TagPolicy())
        repository = await repo.ensure_repository(conn, feed, path.repo)
        stored = await repo.insert_manifest(
            conn,
            repository.id,
            StoredManifest(0, digest, MEDIA_TYPE, len(seed), None, None, datetime.now(UTC)),
            [],
        )
        await repo.set_tag(conn, repository.id, tag, stored.id)
    return ManifestHead(digest, MEDIA_TYPE, len(seed))


def _run(url: str, body: object) -> None:
    async def run() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        db = Database(engine, await open_hot_reads(engine))
        try:
            await body(db)  # type: ignore[operator]
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_moved_tag_is_seen_on_the_next_lookup(database_url: str) -> None:
    path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "team/app")

    async def body(db: Database) -> None:
        assert db.hot is not None
        assert await db.hot.manifest(path, Tag("1.0.0")) is None
        for n in range(20):
            pushed = await _push(db, path, "latest", f"manifest {n}")
            assert await db.hot.manifest(path, Tag("latest")) == pushed
            assert await db.hot.manifest(path, pushed.digest) == pushed

    _run(database_url, body)


def test_a_disabled_feed_answers_nothing_at_once(database_url: str) -> None:
    path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "app")

    async def body(db: Database) -> None:
        assert db.hot is not None
        pushed = await _push(db, path, "1.0.0", "disabled feed")
        assert await db.hot.manifest(path, Tag("1.0.0")) == pushed
        async with db.write() as conn:
            await conn.execute(
                sa.update(feeds).where(feeds.c.name == path.feed).values(active=False)
            )
        assert await db.hot.manifest(path, Tag("1.0.0")) is None
        assert await db.hot.manifest(path, pushed.digest) is None

    _run(database_url, body)


def test_blob_sizes_follow_links(database_url: str) -> None:
    path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "app")
    digest = compute_digest(b"a blob")

    async def body(db: Database) -> None:
        assert db.hot is not None
        await _push(db, path, "1.0.0", "blob feed")
        assert await db.hot.blob_size(path, digest) is None
        async with db.write() as conn:
            feed = await repo.find_feed(conn, path.feed)
            assert feed is not None
            repository = await repo.ensure_repository(conn, feed, path.repo)
            await repo.record_blob(conn, digest, 6)
            await repo.link_blob(conn, repository.id, digest)
        assert await db.hot.blob_size(path, digest) == 6
        async with db.write() as conn:
            assert await repo.unlink_blob(conn, repository.id, digest)
        assert await db.hot.blob_size(path, digest) is None

    _run(database_url, body)


def test_sqlite_answers_from_the_cache_until_anything_commits(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'semreg.db'}"
    path = RepoPath("cached", "app")
    statements: list[str] = []

    async def body(db: Database) -> None:
        hot = db.hot
        assert isinstance(hot, SqliteHotReads)
        hot._conn.set_trace_callback(statements.append)
        pushed = await _push(db, path, "1.0.0", "cached")
        for _ in range(5):
            assert await hot.manifest(path, Tag("1.0.0")) == pushed
        selects = [s for s in statements if s.startswith("SELECT")]
        assert len(selects) == 1, statements
        # Any commit, even one that touches no manifest, makes the next lookup ask again.
        await _push(db, RepoPath("cached", "other"), "1.0.0", "elsewhere")
        assert await hot.manifest(path, Tag("1.0.0")) == pushed
        assert len([s for s in statements if s.startswith("SELECT")]) == 2

    _run(url, body)


def test_a_failing_sqlite_lookup_is_unsure_and_the_service_asks_the_engine(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'semreg.db'}"
    path = RepoPath("unsure", "app")

    async def body(db: Database) -> None:
        hot = db.hot
        assert isinstance(hot, SqliteHotReads)
        pushed = await _push(db, path, "1.0.0", "unsure")
        hot._conn.close()  # any sqlite3 error: a busy or broken connection alike
        assert await hot.manifest(path, Tag("1.0.0")) is UNSURE
        assert await hot.blob_size(path, pushed.digest) is UNSURE
        service = ManifestService(db, MemoryBlobStore(), 4 * 1024 * 1024)
        assert await service.find(path, Tag("1.0.0")) == pushed
        db.hot = None  # closed already

    _run(url, body)


def test_a_miss_is_not_remembered_past_the_next_commit(database_url: str) -> None:
    path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "app")

    async def body(db: Database) -> None:
        assert db.hot is not None
        assert await db.hot.manifest(path, Tag("2.0.0")) is None
        pushed = await _push(db, path, "2.0.0", "late")
        assert await db.hot.manifest(path, Tag("2.0.0")) == pushed
        assert await db.hot.manifest(path, pushed.digest) == pushed

    _run(database_url, body)


def test_anonymous_feeds_follow_the_setting_at_once(database_url: str) -> None:
    path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "app")

    async def body(db: Database) -> None:
        assert db.hot is not None
        await _push(db, path, "1.0.0", "anonymous")
        assert path.feed not in await db.hot.anonymous_feeds()  # type: ignore[operator]
        for allowed in (True, False, True):
            async with db.write() as conn:
                await conn.execute(
                    sa.update(feeds).where(feeds.c.name == path.feed).values(anonymous_view=allowed)
                )
            assert (path.feed in await db.hot.anonymous_feeds()) is allowed  # type: ignore[operator]

    _run(database_url, body)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs the PostgreSQL server")
def test_postgresql_urls_with_sqlalchemy_options_open_hot_reads(tmp_path: Path) -> None:
    # SQLAlchemy's asyncpg options in the URL (a pooler's usual setting) are not asyncpg's.
    with fresh_database("postgresql", tmp_path) as url:
        path = RepoPath(f"hot-{uuid.uuid4().hex[:8]}", "app")

        async def body(db: Database) -> None:
            assert db.hot is not None
            pushed = await _push(db, path, "1.0.0", "pooled")
            assert await db.hot.manifest(path, Tag("1.0.0")) == pushed

        _run(f"{url}?prepared_statement_cache_size=0", body)
