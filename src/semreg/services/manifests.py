"""Manifest use cases: put, get, delete, tags, referrers and the catalog.

Bytes are stored before any metadata points at them; the metadata write is one transaction that
holds the repository lock. Imports: domain, storage.base, metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from semreg import crashpoints
from semreg.domain.digest import Digest
from semreg.domain.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
)
from semreg.domain.inventory import ManifestHead, StoredManifest
from semreg.domain.manifest import (
    DEFAULT_MAX_REFERENCES,
    Descriptor,
    Manifest,
    parse_manifest,
    stored_blobs,
)
from semreg.domain.names import Reference, RepoPath, Tag
from semreg.domain.tags import TagOrigin
from semreg.metadata import digest_locks, repo
from semreg.metadata.engine import Database
from semreg.services import lookup, versioning
from semreg.services.cache import ByteCache
from semreg.storage.base import BlobStore, ObjectMissing


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject: Digest | None
    tags: tuple[Tag, ...]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool


class ManifestService:
    """Manifests, tags and discovery for one database and one blob store."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        max_manifest_bytes: int,
        max_references: int = DEFAULT_MAX_REFERENCES,
    ) -> None:
        self.db = db
        self.store = store
        self.max_manifest_bytes = max_manifest_bytes
        self.max_references = max_references
        # Content-addressed bytes never change, so this cache is right in every process.
        self._bytes = ByteCache(16 * 1024 * 1024)

    def check_size(self, size: int) -> None:
        """Refuse a manifest body larger than the limit.

        Raises:
            ManifestTooLarge: ``size`` is over the limit.
        """
        if size > self.max_manifest_bytes:
            raise ManifestTooLarge(
                f"manifest is larger than the {self.max_manifest_bytes} byte limit",
                {"limit": self.max_manifest_bytes},
            )

    async def put(
        self,
        path: RepoPath,
        reference: Reference,
        content_type: str | None,
        body: bytes,
        extra_tags: Sequence[Tag] = (),
    ) -> PutResult:
        """Store a manifest and point its tags at it.

        Raises:
            ManifestTooLarge, ManifestInvalid: the body is refused (also: more descriptors
                than ``max_references``).
            DigestInvalid: a digest reference does not match the body.
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            ManifestBlobUnknown: a referenced blob or child manifest is not in the repository.
            ManifestInvalid: a descriptor's size differs from the blob or manifest it names.
            InsufficientStorage: the storage is full or read-only.
            TagInvalid, ReleaseImmutable: the feed's Container Versioning rules refuse a tag.
        """
        self.check_size(len(body))
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        manifest = parse_manifest(content_type, body, algorithm, self.max_references)
        if isinstance(reference, Digest) and reference != manifest.digest:
            raise DigestInvalid(
                f"the manifest's digest is {manifest.digest}, not {reference}",
                {"expected": str(reference), "actual": str(manifest.digest)},
            )
        tags = tuple(
            dict.fromkeys([*extra_tags, *([reference] if isinstance(reference, Tag) else [])])
        )
        await self.store.put_bytes(manifest.digest, body)
        crashpoints.reach("manifest.stored")
        async with self.db.write() as conn:
            repository = await lookup.ensure_repository(conn, path)
            await repo.lock_repository(conn, repository.id)
            # Tag policy first: a refused tag is the more useful answer than a missing blob.
            decisions = await versioning.check_tags(
                conn, repository, tags, manifest.digest, TagOrigin.PUSH
            )
            # Locked before the references are checked: they prove the bytes exist.
            await digest_locks.share_digests(conn, [manifest.digest, *_referenced(manifest)])
            await self._check_references(conn, repository.id, manifest)
            await self._confirm_bytes(manifest.digest, body)
            stored = await repo.insert_manifest(
                conn, repository.id, _to_stored(manifest), _references(manifest)
            )
            await versioning.apply_tags(conn, repository, stored.id, manifest.digest, decisions)
            crashpoints.reach("manifest.committing")
        self._bytes.put(manifest.digest, body)
        subject = manifest.subject.digest if manifest.subject else None
        return PutResult(manifest.digest, subject, tags)

    async def _check_references(
        self, conn: AsyncConnection, repository_id: int, manifest: Manifest
    ) -> None:
        blob_sizes = await repo.blob_sizes(
            conn, repository_id, (d.digest for d in stored_blobs(manifest))
        )
        child_sizes = await repo.manifest_sizes(
            conn, repository_id, (d.digest for d in manifest.children)
        )
        held = blob_sizes | child_sizes
        missing = sorted({d for d in _referenced(manifest) if d not in held})
        if missing:
            listed = ", ".join(str(d) for d in missing[:5])
            raise ManifestBlobUnknown(
                f"the manifest references content this repository does not hold: {listed}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + "; push those blobs or manifests first",
                {"digests": [str(d) for d in missing]},
            )
        for where, descriptor in _descriptors(manifest):
            actual = held.get(descriptor.digest)
            if actual is not None and actual != descriptor.size:
                # Clients trust the descriptor's size: every pull of this image would fail.
                raise ManifestInvalid(
                    f"invalid manifest: {where} says {descriptor.digest} is {descriptor.size} "
                    f"bytes, but it is {actual} bytes",
                    {
                        "descriptor": where,
                        "digest": str(descriptor.digest),
                        "size": descriptor.size,
                        "actual": actual,
                    },
                )

    async def _confirm_bytes(self, digest: Digest, body: bytes) -> None:
        """Under the digest's lock, make sure the manifest's bytes are stored: collection may
        have removed an unreferenced copy after ``put_bytes`` found it there."""
        try:
            await self.store.stat(digest)
        except ObjectMissing:
            await self.store.put_bytes(digest, body)

    async def find(self, path: RepoPath, reference: Reference) -> ManifestHead:
        """The manifest a tag or digest names.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            ManifestUnknown: no such manifest or tag in the repository.
        """
        if self.db.hot is not None:
            found = await self.db.hot.manifest(path, reference)
            if isinstance(found, ManifestHead):
                return found
        async with self.db.read() as conn:
            stored = await repo.find_manifest_in(conn, path, reference)
            if stored is None:
                # Raises FeedUnknown or FeedInactive; else the manifest is simply not there.
                await lookup.find_repository(conn, path)
        if stored is None:
            raise ManifestUnknown(
                f"manifest {reference} is not in {path}", {"reference": str(reference)}
            )
        return ManifestHead(stored.digest, stored.media_type, stored.size)

    async def read(self, head: ManifestHead) -> bytes:
        """The bytes of a manifest, exactly as pushed.

        Raises:
            ManifestUnknown: the bytes are gone from storage (a broken invariant, reported).
        """
        cached = self._bytes.get(head.digest)
        if cached is not None:
            return cached
        try:
            body = await self.store.read_bytes(head.digest)
        except ObjectMissing as exc:
            raise ManifestUnknown(
                f"manifest {head.digest} is recorded but its bytes are missing",
                {"digest": str(head.digest)},
            ) from exc
        self._bytes.put(head.digest, body)
        return body

    async def delete(self, path: RepoPath, reference: Reference) -> None:
        """Delete a manifest (and every tag on it) by digest, or just the tag by tag.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
            ManifestUnknown: no such manifest or tag.
            TagInvalid: the tag is a virtual tag managed by semreg.
        """
        async with self.db.write() as conn:
            repository = await lookup.get_repository(conn, path)
            await repo.lock_repository(conn, repository.id)
            if isinstance(reference, Digest):
                stored = await repo.find_manifest(conn, repository.id, reference)
                if stored is not None:
                    # Retire first: deleting the manifest cascades to its release rows.
                    tagged = await repo.list_manifest_tags(conn, stored.id)
                    await versioning.retire(conn, repository.id, tagged)
                    await repo.delete_manifest(conn, stored.id)
                    return
            elif await versioning.delete_tag(conn, repository, reference):
                return
        raise ManifestUnknown(
            f"manifest {reference} is not in {path}", {"reference": str(reference)}
        )

    async def tags(self, path: RepoPath, last: str | None, limit: int | None) -> Page:
        """Tags in lexical order after ``last``; ``limit`` None means all.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
        """
        async with self.db.read() as conn:
            repository = await lookup.get_repository(conn, path)
            fetch = None if limit is None else limit + 1
            names = await repo.list_tags(conn, repository.id, last, fetch)
        if limit is not None and len(names) > limit:
            return Page(names[:limit], True)
        return Page(names, False)

    async def referrers(
        self, path: RepoPath, subject: Digest, artifact_type: str | None
    ) -> list[StoredManifest]:
        """Manifests whose ``subject`` is ``subject``; an unknown repository has none.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
        """
        async with self.db.read() as conn:
            repository = await lookup.find_repository(conn, path)
            if repository is None:
                return []
            return await repo.list_referrers(conn, repository.id, subject, artifact_type)

    async def catalog(
        self, last: str | None, limit: int, feeds: frozenset[str] | None = None
    ) -> Page:
        """Repository names (``feed/repo``) in lexical order after ``last``, in ``feeds`` only
        (None: every feed)."""
        async with self.db.read() as conn:
            names = await repo.list_repositories(conn, last, limit + 1, feeds)
        return Page(names[:limit], len(names) > limit)


def _to_stored(manifest: Manifest) -> StoredManifest:
    return StoredManifest(
        id=0,
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size,
        artifact_type=manifest.artifact_type,
        subject=manifest.subject.digest if manifest.subject else None,
        created_at=datetime.now(UTC),
        annotations=manifest.annotations,
    )


def _referenced(manifest: Manifest) -> list[Digest]:
    """Digests the manifest needs in the repository: distributable blobs and children."""
    return [d.digest for d in (*stored_blobs(manifest), *manifest.children)]


def _descriptors(manifest: Manifest) -> list[tuple[str, Descriptor]]:
    """Each stored blob and child descriptor with where it sits in the manifest."""
    distributable = {id(d) for d in stored_blobs(manifest)}
    named = [
        ("config" if i == 0 else f"layers[{i - 1}]", d)
        for i, d in enumerate(manifest.blobs)
        if id(d) in distributable
    ]
    return named + [(f"manifests[{i}]", d) for i, d in enumerate(manifest.children)]


def _references(manifest: Manifest) -> list[tuple[Digest, str]]:
    refs = [(d.digest, "blob") for d in stored_blobs(manifest)]
    refs += [(d.digest, "manifest") for d in manifest.children]
    return refs
