"""Blob use cases: uploads (start, append, finish, cancel), cross-repository mount, stat, read.

Upload state lives in the metadata database, so any worker can continue an upload and sessions
survive a restart. The running hash is an in-process fast path only: ``hashlib`` objects cannot be
serialized, so an upload continued elsewhere is re-hashed from storage when it is finished.
Imports: domain, storage.base, metadata.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from semreg.domain.digest import DEFAULT_ALGORITHM, Digest, Hasher, new_hasher
from semreg.domain.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    NameUnknown,
    RangeInvalid,
    SizeInvalid,
)
from semreg.domain.inventory import UploadSession
from semreg.domain.names import RepoPath
from semreg.metadata import repo
from semreg.metadata.engine import Database
from semreg.services import lookup
from semreg.storage.base import BlobStore, DigestMismatch, UploadMissing

logger = logging.getLogger(__name__)

LEASE_STALE: Final = timedelta(minutes=2)
LEASE_RENEW_SECONDS: Final = 30.0
_HASHER_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class _RunningHash:
    size: int
    algorithm: str
    hasher: Hasher


class BlobService:
    """Blob reads and the upload protocol for one database and one blob store."""

    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()

    # --- reads ---------------------------------------------------------------------------------

    async def stat(self, path: RepoPath, digest: Digest) -> int:
        """The size of a blob linked into the repository.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            BlobUnknown: the repository does not hold that blob.
        """
        async with self.db.read() as conn:
            size = await repo.find_blob_size_in(conn, path, digest)
            if size is None:
                # Raises FeedUnknown or FeedInactive; else the blob is simply not there.
                await lookup.find_repository(conn, path)
        if size is None:
            raise BlobUnknown(f"blob {digest} is not in {path}", {"digest": str(digest)})
        return size

    def read(self, digest: Digest, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``start`` to ``end`` (exclusive) of a blob ``stat`` has found."""
        return self.store.read(digest, start, end)

    async def delete(self, path: RepoPath, digest: Digest) -> None:
        """Unlink a blob from a repository; its bytes go when nothing uses them (GC).

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: see ``lookup.get_repository``.
            BlobUnknown: the repository does not hold that blob.
        """
        async with self.db.write() as conn:
            repository = await lookup.get_repository(conn, path)
            if not await repo.unlink_blob(conn, repository.id, digest):
                raise BlobUnknown(f"blob {digest} is not in {path}", {"digest": str(digest)})

    # --- uploads -------------------------------------------------------------------------------

    async def start_upload(self, path: RepoPath, algorithm: str = DEFAULT_ALGORITHM) -> str:
        """Open an upload session in the repository (created on first push).

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
        """
        upload_id = str(uuid.uuid4())
        await self.store.create_upload(upload_id)
        async with self.db.write() as conn:
            repository = await lookup.ensure_repository(conn, path)
            await repo.create_upload(conn, upload_id, repository.id)
        self._hashes[upload_id] = _RunningHash(0, algorithm, new_hasher(algorithm))
        self._trim_hashes()
        return upload_id

    async def mount(self, path: RepoPath, digest: Digest, source: RepoPath) -> bool:
        """Link a blob of ``source`` into ``path`` without moving bytes; False if it is absent.

        The caller has checked that the client may read ``source``.

        Raises:
            FeedUnknown, FeedInactive: the target feed is missing or disabled.
        """
        async with self.db.write() as conn:
            try:
                origin = await lookup.find_repository(conn, source)
            except (NameUnknown, Denied):
                return False
            if origin is None or await repo.find_linked_blob_size(conn, origin.id, digest) is None:
                return False
            repository = await lookup.ensure_repository(conn, path)
            await repo.link_blob(conn, repository.id, digest)
        return True

    async def get_upload(self, path: RepoPath, upload_id: str) -> UploadSession:
        """An upload session of this repository.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            BlobUploadUnknown: no such upload in this repository.
        """
        async with self.db.read() as conn:
            repository = await lookup.find_repository(conn, path)
            session = None
            if repository is not None:
                session = await repo.find_upload(conn, repository.id, upload_id)
        if session is None:
            raise BlobUploadUnknown(
                f"upload {upload_id} is not known in {path}; start a new one",
                {"upload": upload_id},
            )
        return session

    async def append(
        self,
        path: RepoPath,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append a chunk; ``start`` must be where the upload ends. Returns the new size.

        Raises:
            BlobUploadUnknown: no such upload.
            RangeInvalid: the chunk does not start at the end of the upload, or another request
                is writing the same upload.
            SizeInvalid: the body's length differs from what Content-Range announced.
        """
        session = await self.get_upload(path, upload_id)
        if start is not None and start != session.size:
            raise RangeInvalid(
                f"chunk starts at byte {start} but the upload holds {session.size} bytes; "
                f"resume from {session.size}",
                {"size": session.size},
            )
        return await self._write(session, chunks, length)

    async def _write(
        self, session: UploadSession, chunks: AsyncIterable[bytes], length: int | None
    ) -> int:
        token = secrets.token_hex(16)
        async with self.db.write() as conn:
            claimed = await repo.claim_upload(conn, session.id, session.size, token, LEASE_STALE)
        if not claimed:
            raise RangeInvalid(
                "the upload changed or is being written by another request; "
                "GET its status and resume",
                {"upload": session.id},
            )
        running = self._hashes.pop(session.id, None)
        if running is not None and running.size != session.size:
            running = None  # another process wrote part of this upload: re-hash at the end
        hasher = running.hasher if running is not None else None
        committed: int | None = None
        try:
            new_size = await self.store.append_upload(
                session.id, session.size, self._renewing(session.id, token, chunks), hasher
            )
            received = new_size - session.size
            if length is not None and received != length:
                raise SizeInvalid(
                    f"received {received} bytes but the request announced {length}",
                    {"received": received, "announced": length},
                )
            committed = new_size
        except UploadMissing as exc:
            raise BlobUploadUnknown(
                f"upload {session.id} has no data; start a new one", {"upload": session.id}
            ) from exc
        finally:
            # A failed or truncated chunk leaves the size as it was: the bytes past it are dropped
            # by the next append.
            async with self.db.write() as conn:
                await repo.release_upload(conn, session.id, token, committed)
        if running is not None:
            self._hashes[session.id] = _RunningHash(new_size, running.algorithm, running.hasher)
            self._trim_hashes()
        return new_size

    async def _renewing(
        self, upload_id: str, token: str, chunks: AsyncIterable[bytes]
    ) -> AsyncIterator[bytes]:
        """Pass chunks through, renewing the writer lease while a long chunk streams in."""
        renewed = time.monotonic()
        async for chunk in chunks:
            if time.monotonic() - renewed > LEASE_RENEW_SECONDS:
                async with self.db.write() as conn:
                    await repo.renew_upload_lease(conn, upload_id, token)
                renewed = time.monotonic()
            yield chunk

    async def finish(
        self,
        path: RepoPath,
        upload_id: str,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None = None,
        start: int | None = None,
        length: int | None = None,
    ) -> None:
        """Append the last chunk (if any), verify the digest and publish the blob.

        Raises:
            BlobUploadUnknown: no such upload.
            RangeInvalid, SizeInvalid: see ``append``.
            DigestInvalid: the bytes do not match ``digest`` (the upload is discarded).
        """
        session = await self.get_upload(path, upload_id)
        size = session.size
        if chunks is not None:
            size = await self.append(path, upload_id, chunks, start, length)
        token = secrets.token_hex(16)
        async with self.db.write() as conn:
            claimed = await repo.claim_upload(conn, upload_id, size, token, LEASE_STALE)
        if not claimed:
            raise RangeInvalid(
                "the upload changed or is being written by another request; "
                "GET its status and resume",
                {"upload": upload_id},
            )
        running = self._hashes.pop(upload_id, None)
        hasher = None
        if running is not None and running.size == size and running.algorithm == digest.algorithm:
            hasher = running.hasher
        try:
            await self.store.commit_upload(upload_id, digest, size, hasher)
        except DigestMismatch as exc:
            await self._forget(upload_id)
            raise DigestInvalid(
                f"the uploaded bytes have digest {exc.actual}, not {digest}; the upload was "
                "discarded",
                {"expected": str(digest), "actual": str(exc.actual)},
            ) from exc
        except UploadMissing as exc:
            await self._forget(upload_id)
            raise BlobUploadInvalid(
                f"upload {upload_id} lost its data; start a new one", {"upload": upload_id}
            ) from exc
        async with self.db.write() as conn:
            await repo.record_blob(conn, digest, size)
            await repo.link_blob(conn, session.repository_id, digest)
            await repo.delete_upload(conn, upload_id)

    async def upload_whole(
        self, path: RepoPath, digest: Digest, chunks: AsyncIterable[bytes]
    ) -> None:
        """Monolithic upload (POST with ``?digest=``).

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            DigestInvalid: the bytes do not match ``digest``.
        """
        upload_id = await self.start_upload(path, digest.algorithm)
        try:
            await self.finish(path, upload_id, digest, chunks)
        except BaseException:
            await self._forget(upload_id)
            raise

    async def cancel(self, path: RepoPath, upload_id: str) -> None:
        """Drop an upload session and its bytes.

        Raises:
            BlobUploadUnknown: no such upload.
        """
        await self.get_upload(path, upload_id)
        await self._forget(upload_id)

    async def _forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        async with self.db.write() as conn:
            await repo.delete_upload(conn, upload_id)
        await self.store.delete_upload(upload_id)

    def _trim_hashes(self) -> None:
        while len(self._hashes) > _HASHER_CACHE_SIZE:
            self._hashes.popitem(last=False)
