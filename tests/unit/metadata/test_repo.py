"""Focused checks of the SQL in ``semreg.metadata.repo`` on SQLite and PostgreSQL.

One migrated database per backend for the module. Most tests run inside a transaction that is
rolled back; the upload tests commit, as two workers would, on upload ids of their own (they
never add manifests, so the catalog test still sees only its own repositories).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.digest import compute_digest
from semreg.domain.feeds import Feed
from semreg.domain.inventory import Repository, StoredManifest, UploadPart, UploadSession
from semreg.domain.tags import TagPolicy
from semreg.metadata import repo, uploads
from semreg.metadata.engine import Database, create_engine
from semreg.metadata.migrate import upgrade
from semreg.metadata.schema import repositories
from semreg.metadata.schema import uploads as upload_table
from tests.unit.metadata import BACKENDS, fresh_database

T = TypeVar("T")


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp(f"repo-{request.param}")
    with fresh_database(request.param, folder) as url:

        async def migrate() -> None:
            engine = create_engine(url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(migrate())
        yield url


def rolled_back(url: str, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``body`` in one write transaction that is rolled back afterwards."""

    async def run() -> T:
        database = Database(create_engine(url))
        try:
            async with database.engine.connect() as conn:
                await conn.execution_options(semreg_write=True)
                transaction = await conn.begin()
                try:
                    return await body(conn)
                finally:
                    await transaction.rollback()
        finally:
            await database.dispose()

    return asyncio.run(run())


def committed(url: str, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``body`` in its own committed write transaction, as one request of a worker would."""

    async def run() -> T:
        database = Database(create_engine(url))
        try:
            async with database.write() as conn:
                return await body(conn)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def make_feed(conn: AsyncConnection, name: str | None = None) -> Feed:
    name = name or f"feed-{uuid.uuid4().hex[:10]}"
    return await repo.create_feed(conn, name, "docker", True, None, TagPolicy())


async def make_manifest(conn: AsyncConnection, repository: Repository, seed: str) -> int:
    stored = await repo.insert_manifest(
        conn,
        repository.id,
        StoredManifest(
            id=0,
            digest=compute_digest(seed.encode()),
            media_type="application/vnd.oci.image.manifest.v1+json",
            size=len(seed),
            artifact_type=None,
            subject=None,
            created_at=datetime.now(UTC),
        ),
        [],
    )
    return stored.id


# --- tags and catalog ----------------------------------------------------------------------------


TAGS = ["b", "B", "a", "_x", "0", "A", "a-b", "a.b", "a_b", "aB", "Z9", "z", "1.0.0", "1.0.0-rc.1"]


def test_tags_are_listed_in_byte_order(database_url: str) -> None:
    async def body(conn: AsyncConnection) -> tuple[list[str], list[str], list[str], list[str]]:
        feed = await make_feed(conn)
        repository = await repo.ensure_repository(conn, feed, "team/app")
        manifest_id = await make_manifest(conn, repository, "tags")
        for tag in TAGS:
            await repo.set_tag(conn, repository.id, tag, manifest_id)
        return (
            await repo.list_tags(conn, repository.id, None, None),
            await repo.list_tags(conn, repository.id, None, 3),
            await repo.list_tags(conn, repository.id, "B", 4),
            await repo.list_tags(conn, repository.id, "aB", None),
        )

    everything, first, after_upper_b, after_ab = rolled_back(database_url, body)
    expected = sorted(TAGS, key=str.encode)
    assert expected[:6] == ["0", "1.0.0", "1.0.0-rc.1", "A", "B", "Z9"]
    assert everything == expected
    assert first == expected[:3]
    assert after_upper_b == ["Z9", "_x", "a", "a-b"]
    assert after_ab == ["a_b", "b", "z"]


def test_tags_of_other_repositories_are_not_listed(database_url: str) -> None:
    async def body(conn: AsyncConnection) -> tuple[list[str], list[str]]:
        feed = await make_feed(conn)
        one = await repo.ensure_repository(conn, feed, "one")
        two = await repo.ensure_repository(conn, feed, "two")
        await repo.set_tag(conn, one.id, "v1", await make_manifest(conn, one, "one"))
        await repo.set_tag(conn, two.id, "v2", await make_manifest(conn, two, "two"))
        return (
            await repo.list_tags(conn, one.id, None, None),
            await repo.list_tags(conn, two.id, None, None),
        )

    assert rolled_back(database_url, body) == (["v1"], ["v2"])


def test_catalog_order_and_paging(database_url: str) -> None:
    # Full names in byte order: '-' < '.' < '/' < '0' < '_'.
    names = ["a/b", "a/b-c", "a/b.c", "a/b/c", "a/b_c", "a0/x", "a/z9"]

    async def body(conn: AsyncConnection) -> list[list[str]]:
        feeds = {"a": await make_feed(conn, "a"), "a0": await make_feed(conn, "a0")}
        for full_name in names:
            feed, _, name = full_name.partition("/")
            repository = await repo.ensure_repository(conn, feeds[feed], name)
            await make_manifest(conn, repository, full_name)
        # a repository without manifests (an upload only) is not in the catalog
        await repo.ensure_repository(conn, feeds["a"], "empty")
        pages = []
        last = None
        while True:
            page = await repo.list_repositories(conn, last, 3)
            pages.append(page)
            if len(page) < 3:
                break
            last = page[-1]
        pages.append(await repo.list_repositories(conn, None, 100))
        pages.append(await repo.list_repositories(conn, "a/b.c", 2))
        pages.append(await repo.list_repositories(conn, "a/b/", 100))
        pages.append(await repo.list_repositories(conn, "zzz", 100))
        return pages

    *paged, everything, after_dot, after_slash, after_end = rolled_back(database_url, body)
    expected = ["a/b", "a/b-c", "a/b.c", "a/b/c", "a/b_c", "a/z9", "a0/x"]
    assert everything == expected
    assert paged == [expected[0:3], expected[3:6], expected[6:]]
    assert after_dot == ["a/b/c", "a/b_c"]
    assert after_slash == ["a/b/c", "a/b_c", "a/z9", "a0/x"]
    assert after_end == []


def test_ensure_repository_is_idempotent(database_url: str) -> None:
    async def body(conn: AsyncConnection) -> tuple[Repository, Repository, Repository | None, int]:
        feed = await make_feed(conn)
        first = await repo.ensure_repository(conn, feed, "team/app")
        second = await repo.ensure_repository(conn, feed, "team/app")
        found = await repo.find_repository(conn, feed, "team/app")
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(repositories)
                .where(repositories.c.feed_id == feed.id)
            )
        ).scalar_one()
        return first, second, found, count

    first, second, found, count = rolled_back(database_url, body)
    assert first == second == found
    assert first.path.repo == "team/app"
    assert str(first.path) == f"{first.feed.name}/team/app"
    assert count == 1


def test_ensure_repository_in_two_feeds(database_url: str) -> None:
    async def body(conn: AsyncConnection) -> tuple[Repository, Repository]:
        one, two = await make_feed(conn), await make_feed(conn)
        return (
            await repo.ensure_repository(conn, one, "app"),
            await repo.ensure_repository(conn, two, "app"),
        )

    first, second = rolled_back(database_url, body)
    assert first.id != second.id
    assert first.feed != second.feed


# --- upload sessions ---------------------------------------------------------------------------


@pytest.fixture
def upload_id(database_url: str) -> str:
    """A committed upload of 0 bytes in a committed repository."""
    upload_id = str(uuid.uuid4())

    async def body(conn: AsyncConnection) -> None:
        feed = await make_feed(conn)
        repository = await repo.ensure_repository(conn, feed, "uploads")
        await uploads.create_upload(conn, upload_id, repository.id)

    committed(database_url, body)
    return upload_id


def record(url: str, upload_id: str, version: int, part: UploadPart, size: int) -> int | None:
    return committed(url, lambda conn: uploads.record_part(conn, upload_id, version, part, size))


def session(url: str, upload_id: str) -> tuple[UploadSession | None, list[UploadPart]]:
    async def body(conn: AsyncConnection) -> tuple[UploadSession | None, list[UploadPart]]:
        row = (
            await conn.execute(sa.select(upload_table).where(upload_table.c.id == upload_id))
        ).first()
        found = await uploads.find_upload(conn, row.repository_id, upload_id) if row else None
        return found, await uploads.list_parts(conn, upload_id)

    return committed(url, body)


def test_of_two_writers_at_one_version_exactly_one_records(
    database_url: str, upload_id: str
) -> None:
    first, second = UploadPart("a" * 32, 10), UploadPart("b" * 32, 7)
    assert record(database_url, upload_id, 0, first, 10) == 1
    # The second writer started at version 0 too: it lost, and nothing of it is recorded.
    assert record(database_url, upload_id, 0, second, 7) is None
    found, parts = session(database_url, upload_id)
    assert found is not None
    assert (found.size, found.version) == (10, 1)
    assert parts == [first]
    # It may resume from the new version.
    assert record(database_url, upload_id, 1, second, 17) == 2
    assert session(database_url, upload_id)[1] == [first, second]


def test_a_checkpoint_grows_the_same_part(database_url: str, upload_id: str) -> None:
    name = "c" * 32
    assert record(database_url, upload_id, 0, UploadPart(name, 8, closed=False), 8) == 1
    assert record(database_url, upload_id, 1, UploadPart(name, 16, closed=False), 16) == 2
    assert record(database_url, upload_id, 2, UploadPart(name, 20), 20) == 3
    found, parts = session(database_url, upload_id)
    assert found is not None
    assert found.size == 20
    assert parts == [UploadPart(name, 20, closed=True)]


def test_record_on_an_unknown_upload_fails(database_url: str) -> None:
    assert record(database_url, str(uuid.uuid4()), 0, UploadPart("d" * 32, 1), 1) is None


def test_delete_at_a_version(database_url: str, upload_id: str) -> None:
    assert record(database_url, upload_id, 0, UploadPart("e" * 32, 3), 3) == 1
    assert not committed(database_url, lambda conn: uploads.delete_upload(conn, upload_id, 0))
    assert session(database_url, upload_id)[0] is not None
    assert committed(database_url, lambda conn: uploads.delete_upload(conn, upload_id, 1))
    assert session(database_url, upload_id) == (None, [])
