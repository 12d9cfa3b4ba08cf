"""Promotion between feeds (and retagging within a repository) without moving bytes.

``promote`` copies an image's manifest rows and blob links into the target feed, applies the
target's Container Versioning rules and moves its virtual tags, and records the promotion, all
in one transaction holding the target repository's lock. Imports: domain, metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from semreg import crashpoints
from semreg.domain.digest import Digest
from semreg.domain.errors import Conflict, ManifestUnknown
from semreg.domain.inventory import Repository, StoredManifest
from semreg.domain.names import Reference, RepoPath, Tag
from semreg.domain.promotion import ImageNode, PromotionRecord, TagChange, plan_promotion
from semreg.domain.tags import TagOrigin
from semreg.metadata import digest_locks, repo
from semreg.metadata.engine import Database
from semreg.services import lookup, versioning


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    source: RepoPath
    version: Tag
    to_feed: str
    to_version: Tag
    comments: str | None = None


async def _find(
    conn: AsyncConnection, repository: Repository, reference: Reference
) -> StoredManifest:
    if isinstance(reference, Digest):
        found = await repo.find_manifest(conn, repository.id, reference)
    else:
        found = await repo.find_tagged_manifest(conn, repository.id, reference.name)
    if found is None:
        raise ManifestUnknown(
            f"{repository.path} has no image {reference}", {"reference": str(reference)}
        )
    return found


async def _image(
    conn: AsyncConnection, repository: Repository, root: StoredManifest
) -> dict[Digest, ImageNode]:
    """The manifest and, for an index, every child manifest, with their references."""
    nodes: dict[Digest, ImageNode] = {}
    pending = [root]
    while pending:
        manifest = pending.pop()
        node = ImageNode(manifest, tuple(await repo.list_manifest_refs(conn, manifest.id)))
        nodes[manifest.digest] = node
        for child in node.children:
            if child not in nodes:
                found = await repo.find_manifest(conn, repository.id, child)
                if found is not None:
                    pending.append(found)
    return nodes


async def _lock_image(
    conn: AsyncConnection, source: Repository, nodes: dict[Digest, ImageNode]
) -> None:
    """Take the digest locks of everything the promotion will reference, then check that the
    source still holds the image: its rows are what prove the bytes exist (garbage collection
    may have removed the bytes of an image deleted since it was read)."""
    digests = set(nodes) | {d for node in nodes.values() for d, _ in node.refs}
    await digest_locks.share_digests(conn, digests)
    still = await repo.manifest_sizes(conn, source.id, nodes)
    if len(still) != len(nodes):
        raise ManifestUnknown(
            f"{source.path} lost part of the image while it was promoted; try again",
            {"missing": sorted(str(d) for d in set(nodes) - set(still))},
        )


class PromotionService:
    """Promotions, retags and their history."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def promote(self, request: PromotionRequest, actor: str) -> PromotionRecord:
        """Make an image of one feed appear in another under a (possibly new) tag.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: a feed or the source repository is missing.
            ManifestUnknown: the source has no such version.
            TagInvalid: the target feed's rules refuse the tag.
            ReleaseImmutable: the target already has that release with another digest.
        """
        target_path = RepoPath(request.to_feed, request.source.repo)
        tags = [request.to_version]
        async with self.db.write() as conn:
            source = await lookup.get_repository(conn, request.source)
            root = await _find(conn, source, request.version)
            nodes = await _image(conn, source, root)
            target = await lookup.ensure_repository(conn, target_path)
            await repo.lock_repository(conn, target.id)
            await versioning.check_tags(conn, target, tags, root.digest, TagOrigin.PROMOTION)
            present = {d for d in nodes if await repo.find_manifest(conn, target.id, d) is not None}
            plan = plan_promotion(root.digest, nodes, present)
            await _lock_image(conn, source, nodes)
            for blob in plan.blobs:
                await repo.link_blob(conn, target.id, blob)
            for node in plan.manifests:
                await repo.insert_manifest(conn, target.id, node.manifest, node.refs)
            promoted = await _find(conn, target, root.digest)
            await versioning.write_tags(
                conn, target, promoted.id, root.digest, tags, TagOrigin.PROMOTION
            )
            record = await repo.record_promotion(
                conn,
                from_feed=request.source.feed,
                to_feed=request.to_feed,
                repository=request.source.repo,
                version=request.version.name,
                to_version=request.to_version.name,
                digest=root.digest,
                comments=request.comments,
                actor=actor,
            )
            crashpoints.reach("promotion.committing")
            return record

    async def history(
        self,
        feed: str | None = None,
        repository: str | None = None,
        version: str | None = None,
        limit: int = 1000,
    ) -> list[PromotionRecord]:
        async with self.db.read() as conn:
            return await repo.list_promotions(conn, feed, repository, version, limit)

    async def create_tag(
        self, path: RepoPath, target: Reference, name: Tag, force: bool, actor: str
    ) -> tuple[str, Digest]:
        """Point a new tag at an existing image; returns Created, Exists or Updated.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown, ManifestUnknown: nothing to tag.
            TagInvalid: Container Versioning refuses the tag (virtual, not a release...).
            Conflict: the tag points at another image and ``force`` is not set.
            ReleaseImmutable: a release (or a reserved one) would move without ``force``.
        """
        async with self.db.write() as conn:
            repository = await lookup.get_repository(conn, path)
            await repo.lock_repository(conn, repository.id)
            image = await _find(conn, repository, target)
            tags = [name]
            await versioning.check_tags(
                conn, repository, tags, image.digest, TagOrigin.RETAG, force
            )
            current = await repo.find_tagged_manifest(conn, repository.id, name.name)
            if current is not None and current.digest == image.digest:
                return "Exists", image.digest
            if current is not None and not force:
                raise Conflict(
                    f"tag {name} already points at {current.digest}; pass force=true to move it "
                    "(needs the Overwrite/Delete permission)",
                    {"tag": name.name, "digest": str(current.digest)},
                )
            await versioning.write_tags(
                conn, repository, image.id, image.digest, tags, TagOrigin.RETAG, force
            )
            old = current.digest if current is not None else None
            action = "move" if current is not None else "create"
            await repo.record_tag_change(
                conn, repository.id, name.name, old, image.digest, action, actor
            )
        return ("Updated" if current is not None else "Created"), image.digest

    async def delete_tag(self, path: RepoPath, tag: Tag, actor: str) -> None:
        """Delete a tag (a release stays reserved).

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
            ManifestUnknown: no such tag.
            TagInvalid: a virtual tag.
        """
        async with self.db.write() as conn:
            repository = await lookup.get_repository(conn, path)
            await repo.lock_repository(conn, repository.id)
            current = await repo.find_tagged_manifest(conn, repository.id, tag.name)
            if current is None or not await versioning.delete_tag(conn, repository, tag):
                raise ManifestUnknown(f"{path} has no tag {tag}", {"tag": tag.name})
            await repo.record_tag_change(
                conn, repository.id, tag.name, current.digest, None, "delete", actor
            )

    async def tag_history(self, path: RepoPath) -> list[TagChange]:
        """Explicit tag changes of a repository, newest first.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
        """
        async with self.db.read() as conn:
            repository = await lookup.get_repository(conn, path)
            return await repo.list_tag_changes(conn, repository.id)
