"""Garbage collection: remove blob bytes nothing refers to, and abandoned uploads.

Metadata never points at absent bytes (bytes are written first), so unreferenced bytes are the
leftovers of deletions and failed pushes. Bytes younger than the grace period are kept: a push in
flight writes its bytes before the metadata that references them. Each deletion re-checks the
database in a write transaction (which serializes with pushes on SQLite and holds no lock a push
needs on PostgreSQL), so only a push of the very same blob within the last instant before the
unlink can race it; ``docs/operations.md`` says how to run it. Imports: domain, storage, metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from semreg.metadata import repo
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
            referenced = await repo.referenced_digests(conn)
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
                    if await repo.is_referenced(conn, digest):
                        continue
                    await repo.forget_blob(conn, digest)
                    await self.store.delete(digest)
            deleted += 1
            freed += size
        logger.info(
            "garbage collection finished",
            extra={"blobs": deleted, "bytes": freed, "uploads": uploads, "dry_run": dry_run},
        )
        return GcReport(deleted, freed, uploads, dry_run)

    async def _abandoned_uploads(self, idle_since: datetime, dry_run: bool) -> int:
        async with self.db.read() as conn:
            stale = await repo.list_stale_uploads(conn, idle_since)
            known = set(await repo.list_upload_ids(conn))
        if not dry_run:
            for upload_id in stale:
                async with self.db.write() as conn:
                    await repo.delete_upload(conn, upload_id)
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
