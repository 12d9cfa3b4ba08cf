"""All SQL of the project: typed async functions on a connection, returning domain types.

``find_*`` returns ``X | None``; the caller owns the transaction. Raises ``IntegrityConflict`` for
unique-key races the caller must resolve. Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.feeds import Feed, FeedChanges
from semreg.domain.inventory import ReleaseRecord, Repository, StoredManifest
from semreg.domain.names import RepoPath, Tag
from semreg.domain.promotion import PromotionRecord, TagChange
from semreg.domain.semver import Version, format_version
from semreg.domain.tags import TagOrigin, TagPolicy, VirtualTag
from semreg.metadata.prepared import Prepared, param
from semreg.metadata.schema import (
    blobs,
    feeds,
    manifest_refs,
    manifests,
    promotions,
    releases,
    repositories,
    repository_blobs,
    retired_releases,
    tag_history,
    tags,
)


class IntegrityConflict(Exception):
    """A unique or foreign key was violated (usually a concurrent writer won)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """A dialect insert that supports ``on_conflict_do_nothing``/``do_update``."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


# --- feeds -------------------------------------------------------------------------------------


def _feed(row: Mapping[Any, Any]) -> Feed:
    return Feed(
        id=row["id"],
        name=row["name"],
        feed_type=row["feed_type"],
        active=bool(row["active"]),
        description=row["description"],
        created_at=row["created_at"],
        policy=TagPolicy(bool(row["container_versioning"]), tuple(row["permitted_tags"] or ())),
        anonymous_view=bool(row["anonymous_view"]),
    )


async def create_feed(
    conn: AsyncConnection,
    name: str,
    feed_type: str,
    active: bool,
    description: str | None,
    policy: TagPolicy,
    anonymous_view: bool = False,
) -> Feed:
    try:
        result = await conn.execute(
            feeds.insert()
            .values(
                name=name,
                feed_type=feed_type,
                active=active,
                description=description,
                created_at=now_utc(),
                container_versioning=policy.versioning,
                permitted_tags=list(policy.permitted),
                anonymous_view=anonymous_view,
            )
            .returning(*feeds.c)
        )
    except IntegrityError as exc:
        raise IntegrityConflict(name) from exc
    return _feed(result.one()._mapping)


async def list_feeds(conn: AsyncConnection) -> list[Feed]:
    result = await conn.execute(sa.select(feeds).order_by(feeds.c.name))
    return [_feed(row._mapping) for row in result]


async def list_anonymous_feeds(conn: AsyncConnection) -> list[str]:
    query = sa.select(feeds.c.name).where(
        feeds.c.anonymous_view.is_(True), feeds.c.active.is_(True)
    )
    return list((await conn.execute(query)).scalars())


_FEED = Prepared(lambda _: sa.select(*feeds.c).where(feeds.c.name == param(feeds.c.name)))
_FEED_COLUMNS = tuple(column.name for column in feeds.c)


async def find_feed(conn: AsyncConnection, name: str) -> Feed | None:
    row = await _FEED.first(conn, name=name)
    if row is None:
        return None
    return _feed(dict(zip(_FEED_COLUMNS, row, strict=True)))


async def update_feed(conn: AsyncConnection, feed_id: int, changes: FeedChanges) -> Feed:
    values: dict[str, Any] = {
        "active": changes.active,
        "description": changes.description,
        "container_versioning": changes.container_versioning,
        "anonymous_view": changes.anonymous_view,
        "permitted_tags": list(changes.permitted_tags)
        if changes.permitted_tags is not None
        else None,
    }
    values = {k: v for k, v in values.items() if v is not None}
    if values:
        await conn.execute(feeds.update().where(feeds.c.id == feed_id).values(**values))
    row = (await conn.execute(sa.select(feeds).where(feeds.c.id == feed_id))).one()
    return _feed(row._mapping)


async def delete_feed(conn: AsyncConnection, feed_id: int) -> None:
    await conn.execute(feeds.delete().where(feeds.c.id == feed_id))


async def count_feed_manifests(conn: AsyncConnection, feed_id: int) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(manifests.join(repositories))
        .where(repositories.c.feed_id == feed_id)
    )
    return int((await conn.execute(query)).scalar_one())


# --- repositories ------------------------------------------------------------------------------


def _repository(row: sa.Row[Any], feed: Feed) -> Repository:
    return Repository(id=row.id, feed=feed, path=RepoPath(feed.name, row.name))


_REPOSITORY_ID = Prepared(
    lambda _: sa.select(repositories.c.id).where(
        repositories.c.feed_id == param(repositories.c.feed_id),
        repositories.c.name == param(repositories.c.name),
    )
)


async def find_repository(conn: AsyncConnection, feed: Feed, name: str) -> Repository | None:
    found = await _REPOSITORY_ID.scalar(conn, feed_id=feed.id, name=name)
    return Repository(found, feed, RepoPath(feed.name, name)) if found is not None else None


async def ensure_repository(conn: AsyncConnection, feed: Feed, name: str) -> Repository:
    """The repository, created on first use (concurrent creators agree on one row)."""
    found = await find_repository(conn, feed, name)
    if found is not None:  # the common case: one statement
        return found
    await conn.execute(
        dialect_insert(conn, repositories)
        .values(feed_id=feed.id, name=name, full_name=f"{feed.name}/{name}", created_at=now_utc())
        .on_conflict_do_nothing()
    )
    found = await find_repository(conn, feed, name)
    if found is None:  # the feed was deleted under us
        raise IntegrityConflict(f"{feed.name}/{name}")
    return found


_LOCK_REPOSITORY = Prepared(
    lambda _: (
        sa.select(repositories.c.id)
        .where(repositories.c.id == param(repositories.c.id))
        .with_for_update()
    )
)


async def lock_repository(conn: AsyncConnection, repository_id: int) -> None:
    """Serialize writers of one repository (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        await _LOCK_REPOSITORY.rows(conn, id=repository_id)


async def list_repositories(
    conn: AsyncConnection, last: str | None, limit: int, feed_names: frozenset[str] | None = None
) -> list[str]:
    """Full names (``feed/repo``) of repositories holding a manifest, after ``last``."""
    query = (
        sa.select(repositories.c.full_name)
        .where(sa.exists().where(manifests.c.repository_id == repositories.c.id))
        .order_by(repositories.c.full_name)
        .limit(limit)
    )
    if last is not None:
        query = query.where(repositories.c.full_name > last)
    if feed_names is not None:
        visible = sa.select(feeds.c.id).where(feeds.c.name.in_(sorted(feed_names)))
        query = query.where(repositories.c.feed_id.in_(visible))
    return list((await conn.execute(query)).scalars())


# --- blobs -------------------------------------------------------------------------------------


def _insert_new(table: sa.Table, *columns: str) -> Prepared:
    return Prepared(
        lambda insert: (
            insert(table).values({c: param(table.c[c]) for c in columns}).on_conflict_do_nothing()
        )
    )


_RECORD_BLOB = _insert_new(blobs, "digest", "size", "created_at")
_LINK_BLOB = _insert_new(repository_blobs, "repository_id", "digest", "created_at")


async def record_blob(conn: AsyncConnection, digest: Digest, size: int) -> None:
    await _RECORD_BLOB.execute(conn, digest=str(digest), size=size, created_at=now_utc())


async def link_blob(conn: AsyncConnection, repository_id: int, digest: Digest) -> None:
    await _LINK_BLOB.execute(
        conn, repository_id=repository_id, digest=str(digest), created_at=now_utc()
    )


async def find_linked_blob_size(
    conn: AsyncConnection, repository_id: int, digest: Digest
) -> int | None:
    query = (
        sa.select(blobs.c.size)
        .select_from(repository_blobs.join(blobs))
        .where(
            repository_blobs.c.repository_id == repository_id,
            repository_blobs.c.digest == str(digest),
        )
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def find_blob_size_in(conn: AsyncConnection, path: RepoPath, digest: Digest) -> int | None:
    """The size of a blob linked into a repository of an active feed, in one query."""
    query = (
        sa.select(blobs.c.size)
        .select_from(
            repository_blobs.join(blobs)
            .join(repositories, repository_blobs.c.repository_id == repositories.c.id)
            .join(feeds, repositories.c.feed_id == feeds.c.id)
        )
        .where(
            feeds.c.name == path.feed,
            feeds.c.active.is_(True),
            repositories.c.name == path.repo,
            repository_blobs.c.digest == str(digest),
        )
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def unlink_blob(conn: AsyncConnection, repository_id: int, digest: Digest) -> bool:
    result = await conn.execute(
        repository_blobs.delete().where(
            repository_blobs.c.repository_id == repository_id,
            repository_blobs.c.digest == str(digest),
        )
    )
    return bool(result.rowcount)


# Lists of up to this many digests (an image's layers) are looked up by prepared statements,
# one per length; longer ones go through the engine.
_PREPARED_LISTS = 16


def _sizes_by_list(table: sa.Table, size: sa.Column[Any], n: int) -> Prepared:
    digest = table.c.digest
    query = (
        sa.select(digest, size)
        .select_from(repository_blobs.join(blobs) if table is repository_blobs else table)
        .where(
            table.c.repository_id == param(table.c.repository_id),
            digest.in_([param(digest, f"d{k}") for k in range(n)]),
        )
    )
    return Prepared(lambda _: query)


_BLOB_SIZES = {
    n: _sizes_by_list(repository_blobs, blobs.c.size, n) for n in range(1, _PREPARED_LISTS + 1)
}
_MANIFEST_SIZES = {
    n: _sizes_by_list(manifests, manifests.c.size, n) for n in range(1, _PREPARED_LISTS + 1)
}


async def blob_sizes(
    conn: AsyncConnection, repository_id: int, digests: Iterable[Digest]
) -> dict[Digest, int]:
    """The recorded sizes of those of ``digests`` that are blobs linked into the repository."""
    wanted = sorted({str(d) for d in digests})
    if not wanted:
        return {}
    if len(wanted) <= _PREPARED_LISTS:
        values = {f"d{n}": d for n, d in enumerate(wanted)}
        found = await _BLOB_SIZES[len(wanted)].rows(conn, repository_id=repository_id, **values)
        return {parse_digest(d): int(size) for d, size in found}
    query = (
        sa.select(blobs.c.digest, blobs.c.size)
        .select_from(repository_blobs.join(blobs))
        .where(
            repository_blobs.c.repository_id == repository_id,
            repository_blobs.c.digest.in_(wanted),
        )
    )
    return {parse_digest(d): size for d, size in await conn.execute(query)}


async def manifest_sizes(
    conn: AsyncConnection, repository_id: int, digests: Iterable[Digest]
) -> dict[Digest, int]:
    """The sizes of those of ``digests`` that are manifests of the repository."""
    wanted = sorted({str(d) for d in digests})
    if not wanted:
        return {}
    if len(wanted) <= _PREPARED_LISTS:
        values = {f"d{n}": d for n, d in enumerate(wanted)}
        found = await _MANIFEST_SIZES[len(wanted)].rows(conn, repository_id=repository_id, **values)
        return {parse_digest(d): int(size) for d, size in found}
    query = sa.select(manifests.c.digest, manifests.c.size).where(
        manifests.c.repository_id == repository_id, manifests.c.digest.in_(wanted)
    )
    return {parse_digest(d): size for d, size in await conn.execute(query)}


# --- manifests and tags ------------------------------------------------------------------------


def _manifest(row: sa.Row[Any]) -> StoredManifest:
    return StoredManifest(
        id=row.id,
        digest=parse_digest(row.digest),
        media_type=row.media_type,
        size=row.size,
        artifact_type=row.artifact_type,
        subject=parse_digest(row.subject_digest) if row.subject_digest else None,
        created_at=row.created_at,
        annotations=row.annotations or {},
    )


_MANIFEST_ID = Prepared(
    lambda _: sa.select(manifests.c.id).where(
        manifests.c.repository_id == param(manifests.c.repository_id),
        manifests.c.digest == param(manifests.c.digest),
    )
)
_INSERT_MANIFEST = Prepared(
    lambda _: (
        manifests.insert()
        .values(
            {
                column: param(manifests.c[column])
                for column in (
                    "repository_id",
                    "digest",
                    "media_type",
                    "artifact_type",
                    "size",
                    "subject_digest",
                    "annotations",
                    "created_at",
                )
            }
        )
        .returning(manifests.c.id)
    )
)
_INSERT_REF = Prepared(
    lambda _: manifest_refs.insert().values(
        {column: param(manifest_refs.c[column]) for column in ("manifest_id", "digest", "kind")}
    )
)


async def insert_manifest(
    conn: AsyncConnection,
    repository_id: int,
    manifest: StoredManifest,
    refs: Sequence[tuple[Digest, str]],
) -> StoredManifest:
    """Store a manifest row and its references, or return the existing row for that digest."""
    if await _MANIFEST_ID.scalar(conn, repository_id=repository_id, digest=str(manifest.digest)):
        existing = await find_manifest(conn, repository_id, manifest.digest)
        assert existing is not None  # the repository is locked: rows do not vanish
        return existing
    annotations = dict(manifest.annotations) or None
    new_id = await _INSERT_MANIFEST.scalar(
        conn,
        repository_id=repository_id,
        digest=str(manifest.digest),
        media_type=manifest.media_type,
        artifact_type=manifest.artifact_type,
        size=manifest.size,
        subject_digest=str(manifest.subject) if manifest.subject else None,
        annotations=annotations,
        created_at=manifest.created_at,
    )
    stored = replace(manifest, id=int(new_id), annotations=annotations or {})
    unique_refs = sorted({(str(d), kind) for d, kind in refs})
    if unique_refs:
        await _INSERT_REF.execute_many(
            conn, [{"manifest_id": stored.id, "digest": d, "kind": k} for d, k in unique_refs]
        )
    return stored


async def find_manifest_in(
    conn: AsyncConnection, path: RepoPath, reference: Digest | Tag
) -> StoredManifest | None:
    """A manifest by feed, repository and tag or digest in one query (active feeds only)."""
    # The repository's id as a scalar subquery: every lookup below is then an equality on a
    # unique key, so the plan stays two index probes even while the planner's statistics are
    # stale (a repository that just received thousands of manifests, before autoanalyze).
    repository_id = (
        sa.select(repositories.c.id)
        .join(feeds, repositories.c.feed_id == feeds.c.id)
        .where(
            feeds.c.name == path.feed,
            feeds.c.active.is_(True),
            repositories.c.name == path.repo,
        )
        .scalar_subquery()
    )
    if isinstance(reference, Digest):
        query = sa.select(manifests).where(
            manifests.c.repository_id == repository_id, manifests.c.digest == str(reference)
        )
    else:
        query = (
            sa.select(manifests)
            .select_from(tags.join(manifests, tags.c.manifest_id == manifests.c.id))
            .where(tags.c.repository_id == repository_id, tags.c.name == reference.name)
        )
    row = (await conn.execute(query)).first()
    return _manifest(row) if row else None


async def find_manifest(
    conn: AsyncConnection, repository_id: int, digest: Digest
) -> StoredManifest | None:
    query = sa.select(manifests).where(
        manifests.c.repository_id == repository_id, manifests.c.digest == str(digest)
    )
    row = (await conn.execute(query)).first()
    return _manifest(row) if row else None


async def find_tagged_manifest(
    conn: AsyncConnection, repository_id: int, tag: str
) -> StoredManifest | None:
    query = (
        sa.select(manifests)
        .select_from(tags.join(manifests))
        .where(tags.c.repository_id == repository_id, tags.c.name == tag)
    )
    row = (await conn.execute(query)).first()
    return _manifest(row) if row else None


async def delete_manifest(conn: AsyncConnection, manifest_id: int) -> None:
    await conn.execute(tags.delete().where(tags.c.manifest_id == manifest_id))
    await conn.execute(manifests.delete().where(manifests.c.id == manifest_id))


def _set_tag(insert: Callable[[sa.Table], Any]) -> Any:
    columns = ("repository_id", "name", "manifest_id", "updated_at", "kind", "origin")
    statement = insert(tags).values({c: param(tags.c[c]) for c in columns})
    changed = ("manifest_id", "updated_at", "kind", "origin")
    return statement.on_conflict_do_update(
        index_elements=[tags.c.repository_id, tags.c.name],
        set_={c: statement.excluded[c] for c in changed},
    )


_SET_TAG = Prepared(_set_tag)


async def set_tag(
    conn: AsyncConnection,
    repository_id: int,
    tag: str,
    manifest_id: int,
    *,
    kind: str = "client",
    origin: TagOrigin = TagOrigin.PUSH,
) -> None:
    await _SET_TAG.execute(
        conn,
        repository_id=repository_id,
        name=tag,
        manifest_id=manifest_id,
        updated_at=now_utc(),
        kind=kind,
        origin=str(origin),
    )


async def find_tag_kind(conn: AsyncConnection, repository_id: int, tag: str) -> str | None:
    query = sa.select(tags.c.kind).where(tags.c.repository_id == repository_id, tags.c.name == tag)
    return (await conn.execute(query)).scalar_one_or_none()


async def list_manifest_tags(conn: AsyncConnection, manifest_id: int) -> list[str]:
    query = sa.select(tags.c.name).where(tags.c.manifest_id == manifest_id, tags.c.kind == "client")
    return list((await conn.execute(query)).scalars())


async def list_client_tags(
    conn: AsyncConnection, repository_id: int
) -> list[tuple[str, int, Digest]]:
    """Every client-written tag of a repository with its manifest id and digest."""
    query = (
        sa.select(tags.c.name, manifests.c.id, manifests.c.digest)
        .select_from(tags.join(manifests))
        .where(tags.c.repository_id == repository_id, tags.c.kind == "client")
    )
    return [(name, mid, parse_digest(d)) for name, mid, d in await conn.execute(query)]


async def delete_virtual_tag(conn: AsyncConnection, repository_id: int, tag: str) -> None:
    await conn.execute(
        tags.delete().where(
            tags.c.repository_id == repository_id, tags.c.name == tag, tags.c.kind == "virtual"
        )
    )


async def release_virtual_tags(conn: AsyncConnection, feed_id: int) -> None:
    """Hand a feed's virtual tags over to clients: they stay where they are, unmanaged."""
    in_feed = sa.select(repositories.c.id).where(repositories.c.feed_id == feed_id)
    await conn.execute(
        tags.update()
        .where(tags.c.kind == "virtual", tags.c.repository_id.in_(in_feed))
        .values(kind="client")
    )


async def delete_tag(conn: AsyncConnection, repository_id: int, tag: str) -> bool:
    result = await conn.execute(
        tags.delete().where(tags.c.repository_id == repository_id, tags.c.name == tag)
    )
    return bool(result.rowcount)


async def list_tags(
    conn: AsyncConnection, repository_id: int, last: str | None, limit: int | None
) -> list[str]:
    query = (
        sa.select(tags.c.name).where(tags.c.repository_id == repository_id).order_by(tags.c.name)
    )
    if last is not None:
        query = query.where(tags.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return list((await conn.execute(query)).scalars())


async def list_referrers(
    conn: AsyncConnection, repository_id: int, subject: Digest, artifact_type: str | None
) -> list[StoredManifest]:
    query = (
        sa.select(manifests)
        .where(
            manifests.c.repository_id == repository_id,
            manifests.c.subject_digest == str(subject),
        )
        .order_by(manifests.c.id)
    )
    if artifact_type is not None:
        query = query.where(manifests.c.artifact_type == artifact_type)
    return [_manifest(row) for row in await conn.execute(query)]


# --- releases (Container Versioning) -----------------------------------------------------------


def _release_digest(table: sa.Table) -> Prepared:
    query = sa.select(table.c.digest).where(
        table.c.repository_id == param(table.c.repository_id), table.c.tag == param(table.c.tag)
    )
    return Prepared(lambda _: query)


_RELEASE_DIGESTS = (_release_digest(releases), _release_digest(retired_releases))


async def find_release_digest(conn: AsyncConnection, repository_id: int, tag: str) -> Digest | None:
    """The digest a release tag points at, or pointed at before it was deleted (reserved)."""
    for statement in _RELEASE_DIGESTS:
        found = await statement.scalar(conn, repository_id=repository_id, tag=tag)
        if found is not None:
            return parse_digest(found)
    return None


def _upsert_release(insert: Callable[[sa.Table], Any]) -> Any:
    changed = ("manifest_id", "digest", "major", "minor", "stable", "sort_key")
    columns = ("repository_id", "tag", *changed, "pushed_at")
    statement = insert(releases).values({c: param(releases.c[c]) for c in columns})
    # A re-push of the same digest keeps the original push time.
    keep_time = sa.case(
        (releases.c.digest == statement.excluded.digest, releases.c.pushed_at),
        else_=statement.excluded.pushed_at,
    )
    return statement.on_conflict_do_update(
        index_elements=[releases.c.repository_id, releases.c.tag],
        set_={**{c: statement.excluded[c] for c in changed}, "pushed_at": keep_time},
    )


_UPSERT_RELEASE = Prepared(_upsert_release)
_UNRETIRE = Prepared(
    lambda _: retired_releases.delete().where(
        retired_releases.c.repository_id == param(retired_releases.c.repository_id),
        retired_releases.c.tag == param(retired_releases.c.tag),
    )
)


async def upsert_release(
    conn: AsyncConnection, repository_id: int, version: Version, manifest_id: int, digest: Digest
) -> None:
    tag = format_version(version)
    await _UPSERT_RELEASE.execute(
        conn,
        repository_id=repository_id,
        tag=tag,
        manifest_id=manifest_id,
        digest=str(digest),
        major=str(version.major),
        minor=str(version.minor),
        stable=version.is_stable,
        sort_key=version.sort_key,
        pushed_at=now_utc(),
    )
    await _UNRETIRE.execute(conn, repository_id=repository_id, tag=tag)


async def retire_release(conn: AsyncConnection, repository_id: int, tag: str) -> bool:
    """Move a live release to the reserved list; False when ``tag`` is not a live release."""
    query = sa.select(releases.c.digest).where(
        releases.c.repository_id == repository_id, releases.c.tag == tag
    )
    digest = (await conn.execute(query)).scalar_one_or_none()
    if digest is None:
        return False
    await conn.execute(
        releases.delete().where(releases.c.repository_id == repository_id, releases.c.tag == tag)
    )
    await conn.execute(
        dialect_insert(conn, retired_releases)
        .values(repository_id=repository_id, tag=tag, digest=digest, retired_at=now_utc())
        .on_conflict_do_nothing()
    )
    return True


async def purge_retired_release(conn: AsyncConnection, repository_id: int, tag: str) -> bool:
    result = await conn.execute(
        retired_releases.delete().where(
            retired_releases.c.repository_id == repository_id, retired_releases.c.tag == tag
        )
    )
    return bool(result.rowcount)


def _top_release(major: bool, minor: bool, stable: bool) -> Prepared:
    query = sa.select(releases.c.manifest_id).where(
        releases.c.repository_id == param(releases.c.repository_id)
    )
    if major:
        query = query.where(releases.c.major == param(releases.c.major))
    if minor:
        query = query.where(releases.c.minor == param(releases.c.minor))
    if stable:
        query = query.where(releases.c.stable.is_(True))
    top = query.order_by(releases.c.sort_key.desc()).limit(1)
    return Prepared(lambda _: top)


# By (selects a major, selects a minor, stable only): one statement per virtual tag's shape.
_TOP_RELEASE = {
    (major, minor, stable): _top_release(major, minor, stable)
    for major in (False, True)
    for minor in (False, True)
    for stable in (False, True)
}


async def find_top_release(
    conn: AsyncConnection, repository_id: int, tag: VirtualTag
) -> int | None:
    """The manifest id of the highest release a virtual tag selects (two index probes at most)."""
    values = {"repository_id": repository_id, "major": str(tag.major), "minor": str(tag.minor)}
    shape = (tag.major is not None, tag.minor is not None)
    found = await _TOP_RELEASE[(*shape, True)].scalar(conn, **values)
    if found is None and tag.falls_back_to_prerelease:
        found = await _TOP_RELEASE[(*shape, False)].scalar(conn, **values)
    return int(found) if found is not None else None


async def delete_feed_releases(conn: AsyncConnection, feed_id: int) -> None:
    in_feed = sa.select(repositories.c.id).where(repositories.c.feed_id == feed_id)
    await conn.execute(releases.delete().where(releases.c.repository_id.in_(in_feed)))
    await conn.execute(
        retired_releases.delete().where(retired_releases.c.repository_id.in_(in_feed))
    )


async def list_feed_repositories(conn: AsyncConnection, feed: Feed) -> list[Repository]:
    query = (
        sa.select(repositories).where(repositories.c.feed_id == feed.id).order_by(repositories.c.id)
    )
    return [_repository(row, feed) for row in await conn.execute(query)]


async def list_releases(conn: AsyncConnection, repository_id: int) -> list[ReleaseRecord]:
    """Live releases, highest first, with their virtual tags, size and push time."""
    query = (
        sa.select(
            releases.c.tag,
            releases.c.digest,
            releases.c.pushed_at,
            manifests.c.size,
            releases.c.manifest_id,
        )
        .select_from(releases.join(manifests, manifests.c.id == releases.c.manifest_id))
        .where(releases.c.repository_id == repository_id)
        .order_by(releases.c.sort_key.desc())
    )
    rows = (await conn.execute(query)).all()
    virtual_query = sa.select(tags.c.name, tags.c.manifest_id).where(
        tags.c.repository_id == repository_id, tags.c.kind == "virtual"
    )
    by_manifest: dict[int, list[str]] = {}
    for name, manifest_id in await conn.execute(virtual_query):
        by_manifest.setdefault(manifest_id, []).append(name)
    return [
        ReleaseRecord(
            tag=row.tag,
            digest=parse_digest(row.digest),
            size=row.size,
            pushed_at=row.pushed_at,
            virtual_tags=tuple(sorted(by_manifest.get(row.manifest_id, ()))),
        )
        for row in rows
    ]


# --- promotion and tag history ---------------------------------------------------------------


async def list_manifest_refs(conn: AsyncConnection, manifest_id: int) -> list[tuple[Digest, str]]:
    query = sa.select(manifest_refs.c.digest, manifest_refs.c.kind).where(
        manifest_refs.c.manifest_id == manifest_id
    )
    return [(parse_digest(d), kind) for d, kind in await conn.execute(query)]


async def record_promotion(
    conn: AsyncConnection,
    *,
    from_feed: str,
    to_feed: str,
    repository: str,
    version: str,
    to_version: str,
    digest: Digest,
    comments: str | None,
    actor: str,
) -> PromotionRecord:
    result = await conn.execute(
        promotions.insert()
        .values(
            from_feed=from_feed,
            to_feed=to_feed,
            repository=repository,
            version=version,
            to_version=to_version,
            digest=str(digest),
            comments=comments,
            actor=actor,
            promoted_at=now_utc(),
        )
        .returning(*promotions.c)
    )
    return _promotion(result.one())


def _promotion(row: sa.Row[Any]) -> PromotionRecord:
    return PromotionRecord(
        id=row.id,
        from_feed=row.from_feed,
        to_feed=row.to_feed,
        repository=row.repository,
        version=row.version,
        to_version=row.to_version,
        digest=parse_digest(row.digest),
        comments=row.comments,
        actor=row.actor,
        promoted_at=row.promoted_at,
    )


async def list_promotions(
    conn: AsyncConnection,
    feed: str | None,
    repository: str | None,
    version: str | None,
    limit: int,
) -> list[PromotionRecord]:
    """Newest first; ``feed`` matches either end of a promotion."""
    query = sa.select(promotions).order_by(promotions.c.id.desc()).limit(limit)
    if feed is not None:
        query = query.where(sa.or_(promotions.c.from_feed == feed, promotions.c.to_feed == feed))
    if repository is not None:
        query = query.where(promotions.c.repository == repository)
    if version is not None:
        query = query.where(
            sa.or_(promotions.c.version == version, promotions.c.to_version == version)
        )
    return [_promotion(row) for row in await conn.execute(query)]


async def record_tag_change(
    conn: AsyncConnection,
    repository_id: int,
    tag: str,
    old: Digest | None,
    new: Digest | None,
    action: str,
    actor: str,
) -> None:
    await conn.execute(
        tag_history.insert().values(
            repository_id=repository_id,
            tag=tag,
            old_digest=str(old) if old else None,
            new_digest=str(new) if new else None,
            action=action,
            actor=actor,
            at=now_utc(),
        )
    )


async def list_tag_changes(conn: AsyncConnection, repository_id: int) -> list[TagChange]:
    query = (
        sa.select(tag_history)
        .where(tag_history.c.repository_id == repository_id)
        .order_by(tag_history.c.id.desc())
    )
    return [
        TagChange(
            tag=row.tag,
            old_digest=parse_digest(row.old_digest) if row.old_digest else None,
            new_digest=parse_digest(row.new_digest) if row.new_digest else None,
            action=row.action,
            actor=row.actor,
            at=row.at,
        )
        for row in await conn.execute(query)
    ]
