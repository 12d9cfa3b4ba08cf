"""Garbage collection: remove blob bytes nothing refers to, and abandoned uploads.

Each blob is collected in a transaction of its own that holds the digest's lock exclusively
(``metadata.digest_locks``), re-checks that nothing references the digest and deletes the bytes
before it commits; every write that references a digest holds the same lock shared and checks
the bytes exist. So no acknowledged blob or manifest is collected, whatever the grace period
(``docs/operations.md`` has the argument). The grace period only spares young unreferenced
bytes, e.g. a push that has stored its bytes and not yet its metadata, from being written twice.
Imports: domain, storage, metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from semreg import crashpoints
from semreg.metadata import collection, digest_locks, uploads
from semreg.metadata.engine import Database
from semreg.storage.base import BlobStore, ObjectMissing

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GcReport:
    blobs_deleted: int
    bytes_freed: int
    uploads_deleted: int
    dry_run: bool


class GarbageCollector:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    async def run(
        self,
        grace: timedelta = timedelta(hours=1),
        upload_ttl: timedelta = timedelta(days=1),
        dry_run: bool = False,
    ) -> GcReport:
        """Delete unreferenced blobs older than ``grace`` and uploads idle for ``upload_ttl``."""
        now = datetime.now(UTC)
        uploads = await self._abandoned_uploads(now - upload_ttl, dry_run)
        async with self.db.read() as conn:
            referenced = await collection.referenced_digests(conn)
        deleted = freed = 0
        async for digest in self.store.iter_digests():
            if str(digest) in referenced:
                continue
            try:
                if await self.store.modified_at(digest) > now - grace:
                    continue
                size = await self.store.stat(digest)
            except ObjectMissing:
                continue
            if not dry_run:
                async with self.db.write() as conn:
                    await digest_locks.lock_digest(conn, digest)
                    if await collection.is_referenced(conn, digest):
                        continue
                    # Deleted while the lock is held: a writer that waits for it then finds the
                    # bytes gone and stores them again.
                    await self.store.delete(digest)
                    crashpoints.reach("gc.deleting")
                    await collection.forget_blob(conn, digest)
            deleted += 1
            freed += size
        logger.info(
            "garbage collection finished",
            extra={"blobs": deleted, "bytes": freed, "uploads": uploads, "dry_run": dry_run},
        )
        return GcReport(deleted, freed, uploads, dry_run)

    async def _abandoned_uploads(self, idle_since: datetime, dry_run: bool) -> int:
        async with self.db.read() as conn:
            stale = await uploads.list_stale_uploads(conn, idle_since)
            known = set(await uploads.list_upload_ids(conn))
        if not dry_run:
            for upload_id in stale:
                async with self.db.write() as conn:
                    await uploads.delete_upload(conn, upload_id)
                await self.store.delete_upload(upload_id)
        # Bytes with no session: a process that stopped between creating an upload's bytes and
        # recording it. The same idle time protects an upload being started right now.
        orphans = [
            upload_id
            async for upload_id, written in self.store.iter_uploads()
            if upload_id not in known and written < idle_since
        ]
        if not dry_run:
            for upload_id in orphans:
                await self.store.delete_upload(upload_id)
        return len(stale) + len(orphans)
