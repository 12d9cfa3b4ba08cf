"""Container Versioning inside a write transaction: tag writes, release bookkeeping, virtual tags.

Every tag write of every origin (push, promotion, retag, replication) goes through
``write_tags``; the decision itself is ``domain.tags.check_tag_write``. Virtual tags change in the
caller's transaction, which holds the repository lock, so readers never see them stale.
Imports: domain, metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.digest import Digest
from semreg.domain.errors import TagInvalid
from semreg.domain.feeds import Feed
from semreg.domain.inventory import Repository
from semreg.domain.names import Tag
from semreg.domain.semver import Version, find_version
from semreg.domain.tags import (
    TagOrigin,
    TagWrite,
    VirtualTag,
    affected_virtual_tags,
    check_tag_write,
    fallback_subject,
)
from semreg.metadata import repo


@dataclass(frozen=True, slots=True)
class TagDecision:
    """An allowed tag write; ``version`` is set for release tags of a versioned feed."""

    tag: Tag
    origin: TagOrigin
    version: Version | None


async def _tag_write(
    conn: AsyncConnection,
    repository: Repository,
    tag: Tag,
    digest: Digest,
    origin: TagOrigin,
    force: bool,
) -> TagWrite:
    """Gather what the versioning decision needs to know about one tag write."""
    if not repository.feed.policy.versioning:
        return TagWrite(tag, digest, origin)
    release_digest = None
    if find_version(tag.name) is not None:
        release_digest = await repo.find_release_digest(conn, repository.id, tag.name)
    subject = fallback_subject(tag.name)
    subject_exists = (
        subject is not None and await repo.find_manifest(conn, repository.id, subject) is not None
    )
    return TagWrite(tag, digest, origin, release_digest, subject_exists, force)


async def check_tags(
    conn: AsyncConnection,
    repository: Repository,
    tags: Sequence[Tag],
    digest: Digest,
    origin: TagOrigin,
    force: bool = False,
) -> list[TagDecision]:
    """Decide every tag write before anything is written.

    Raises:
        TagInvalid: the feed's rules refuse a tag.
        ReleaseImmutable: a release would move to another digest.
    """
    decisions = []
    for tag in tags:
        write = await _tag_write(conn, repository, tag, digest, origin, force)
        version = check_tag_write(repository.feed.name, repository.feed.policy, write)
        decisions.append(TagDecision(tag, origin, version))
    return decisions


async def write_tags(
    conn: AsyncConnection,
    repository: Repository,
    manifest_id: int,
    digest: Digest,
    tags: Sequence[Tag],
    origin: TagOrigin,
    force: bool = False,
) -> None:
    """Point ``tags`` at a manifest under the feed's rules and update the virtual tags.

    Raises:
        TagInvalid, ReleaseImmutable: see ``check_tags``.
    """
    decisions = await check_tags(conn, repository, tags, digest, origin, force)
    await apply_tags(conn, repository, manifest_id, digest, decisions)


async def apply_tags(
    conn: AsyncConnection,
    repository: Repository,
    manifest_id: int,
    digest: Digest,
    decisions: Sequence[TagDecision],
) -> None:
    """Write tag writes that ``check_tags`` allowed, then update the virtual tags."""
    changed: list[Version] = []
    origin = TagOrigin.PUSH
    for decision in decisions:
        origin = decision.origin
        await repo.set_tag(conn, repository.id, decision.tag.name, manifest_id, origin=origin)
        if decision.version is not None:
            await repo.upsert_release(conn, repository.id, decision.version, manifest_id, digest)
            changed.append(decision.version)
    await refresh_virtual_tags(conn, repository.id, changed, origin)


async def refresh_virtual_tags(
    conn: AsyncConnection,
    repository_id: int,
    versions: Iterable[Version],
    origin: TagOrigin = TagOrigin.PUSH,
) -> None:
    """Re-point the virtual tags that adding or removing ``versions`` may have changed."""
    affected: dict[str, VirtualTag] = {}
    for version in versions:
        for tag in affected_virtual_tags(version):
            affected[tag.name] = tag
    for name, tag in sorted(affected.items()):
        target = await repo.find_top_release(conn, repository_id, tag)
        if target is None:
            await repo.delete_virtual_tag(conn, repository_id, name)
        else:
            await repo.set_tag(conn, repository_id, name, target, kind="virtual", origin=origin)


async def delete_tag(conn: AsyncConnection, repository: Repository, tag: Tag) -> bool:
    """Delete a client tag; a release becomes reserved and the virtual tags move.

    Raises:
        TagInvalid: the tag is a virtual tag managed by semreg.
    """
    kind = await repo.find_tag_kind(conn, repository.id, tag.name)
    if kind is None:
        return False
    if kind == "virtual":
        raise TagInvalid(
            f"tag {tag.name!r} is managed by semreg (Container Versioning) and moves by itself; "
            "delete the release it points at instead",
            {"tag": tag.name, "reason": "virtual"},
        )
    await repo.delete_tag(conn, repository.id, tag.name)
    await retire(conn, repository.id, [tag.name])
    return True


async def retire(conn: AsyncConnection, repository_id: int, tag_names: Iterable[str]) -> None:
    """Reserve the releases among ``tag_names`` and move the virtual tags off them."""
    retired = []
    for name in tag_names:
        version = find_version(name)
        if version is not None and await repo.retire_release(conn, repository_id, name):
            retired.append(version)
    await refresh_virtual_tags(conn, repository_id, retired)


async def enable(conn: AsyncConnection, feed: Feed) -> None:
    """Track the release tags already in a feed and compute its virtual tags."""
    for repository in await repo.list_feed_repositories(conn, feed):
        versions = []
        for name, manifest_id, digest in await repo.list_client_tags(conn, repository.id):
            version = find_version(name)
            if version is not None:
                await repo.upsert_release(conn, repository.id, version, manifest_id, digest)
                versions.append(version)
        await refresh_virtual_tags(conn, repository.id, versions)


async def disable(conn: AsyncConnection, feed: Feed) -> None:
    """Stop managing a feed: virtual tags stay where they are as ordinary tags."""
    await repo.release_virtual_tags(conn, feed.id)
    await repo.delete_feed_releases(conn, feed.id)
