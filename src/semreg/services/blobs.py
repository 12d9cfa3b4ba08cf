"""Blob use cases: uploads (start, write, finish, cancel), cross-repository mount, stat, read.

Upload state lives in the metadata database, so any worker can continue an upload and sessions
survive a restart. An upload is a list of parts (``storage.base``): each request that writes
writes a part of its own, never a file another request writes, and records it with a
compare-and-set on the session's version. Of two requests writing one upload at once, exactly
one is recorded; the other fails with 416 before it answers, having changed nothing anyone reads.
While a part streams in, its durable size is recorded every ``checkpoint_bytes`` (at most once
per ``checkpoint_seconds``), so a crash loses at most that much and the client resumes at once
(there is no lease to wait out).

The running hash is an in-process fast path only (``hashlib`` objects cannot be serialized): it
is trusted at the end only when it saw exactly the parts the database lists, same names and same
sizes; otherwise the bytes are hashed from storage. Publishing takes the digest's lock shared and
checks the bytes are there (``metadata.digest_locks``), which fences garbage collection.
Imports: domain, storage.base, metadata.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from semreg import crashpoints
from semreg.domain.digest import DEFAULT_ALGORITHM, Digest, Hasher, new_hasher
from semreg.domain.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    NameUnknown,
    RangeInvalid,
    RegistryError,
    SizeInvalid,
    TooManyRequests,
)
from semreg.domain.inventory import UploadPart, UploadSession
from semreg.domain.names import RepoPath
from semreg.metadata import digest_locks, repo, uploads
from semreg.metadata.engine import Database
from semreg.services import lookup
from semreg.storage.base import BlobStore, DigestMismatch, ObjectMissing, UploadMissing

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_BYTES: Final = 8 * 1024 * 1024
# At most one checkpoint (an fsync and a write transaction) per second and chunk: a fast local
# push is not held up by them, and a crash still loses at most about a second of it.
DEFAULT_CHECKPOINT_SECONDS: Final = 1.0
DEFAULT_MAX_UPLOADS_PER_OWNER: Final = 1000
# Sessions not written for this long are abandoned: they no longer count against the limit.
ACTIVE_UPLOAD: Final = timedelta(hours=1)
_HASHER_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class _RunningHash:
    """A hash of exactly the bytes of ``parts`` (names and counted sizes), in order."""

    parts: tuple[tuple[str, int], ...]
    algorithm: str
    hasher: Hasher


@dataclass(slots=True)
class _Writing:
    """One request's part while it streams: where the upload stood when it last recorded."""

    session: UploadSession
    name: str
    version: int
    recorded: bool = False


def _identity(parts: Sequence[UploadPart]) -> tuple[tuple[str, int], ...]:
    return tuple((p.name, p.size) for p in parts)


async def _bounded(chunks: AsyncIterable[bytes], limit: int | None) -> AsyncIterator[bytes]:
    """The chunks, refusing more than ``limit`` bytes (the announced length) in total."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if limit is not None and received > limit:
            raise SizeInvalid(
                f"the body is longer than the {limit} bytes its Content-Range announced",
                {"announced": limit},
            )
        yield chunk


class BlobService:
    """Blob reads and the upload protocol for one database and one blob store."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES,
        max_uploads_per_owner: int = DEFAULT_MAX_UPLOADS_PER_OWNER,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    ) -> None:
        self.db = db
        self.store = store
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_seconds = checkpoint_seconds
        self.max_uploads_per_owner = max_uploads_per_owner
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()

    # --- reads ---------------------------------------------------------------------------------

    async def stat(self, path: RepoPath, digest: Digest) -> int:
        """The size of a blob linked into the repository.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            BlobUnknown: the repository does not hold that blob.
        """
        if self.db.hot is not None:
            found = await self.db.hot.blob_size(path, digest)
            if isinstance(found, int):
                return found
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
            # Locked before the source link is read: the link is what proves the bytes exist.
            await digest_locks.share_digests(conn, [digest])
            if origin is None or await repo.find_linked_blob_size(conn, origin.id, digest) is None:
                return False
            repository = await lookup.ensure_repository(conn, path)
            await repo.link_blob(conn, repository.id, digest)
        return True

    # --- uploads -------------------------------------------------------------------------------

    async def start_upload(
        self, path: RepoPath, algorithm: str = DEFAULT_ALGORITHM, owner: str | None = None
    ) -> str:
        """Open an upload session in the repository (created on first push).

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            TooManyRequests: ``owner`` has ``max_uploads_per_owner`` uploads in progress.
            InsufficientStorage: the storage is full or read-only.
        """
        upload_id = str(uuid.uuid4())
        await self.store.create_upload(upload_id)
        try:
            async with self.db.write() as conn:
                repository = await lookup.ensure_repository(conn, path)
                if owner is not None:
                    await self._check_upload_count(conn, owner)
                await uploads.create_upload(conn, upload_id, repository.id, owner)
        except RegistryError:
            await self.store.delete_upload(upload_id)
            raise
        self._remember(upload_id, _RunningHash((), algorithm, new_hasher(algorithm)))
        return upload_id

    async def _check_upload_count(self, conn: AsyncConnection, owner: str) -> None:
        since = datetime.now(UTC) - ACTIVE_UPLOAD
        if await uploads.count_active_uploads(conn, owner, since) >= self.max_uploads_per_owner:
            raise TooManyRequests(
                f"{owner} has {self.max_uploads_per_owner} uploads in progress, the limit "
                "(server.max_uploads_per_principal): finish or cancel some first",
                {"limit": self.max_uploads_per_owner, "retryAfter": 60},
            )

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
                session = await uploads.find_upload(conn, repository.id, upload_id)
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
                wrote the upload first.
            SizeInvalid: the body's length differs from what Content-Range announced.
            InsufficientStorage: the storage is full or read-only.
        """
        session = await self.get_upload(path, upload_id)
        _check_start(session, start)
        writing, written, hasher = await self._write_part(session, chunks, length)
        if written == 0 and not writing.recorded:
            return session.size
        final = UploadPart(writing.name, written, closed=True)
        async with self.db.write() as conn:
            version = await uploads.record_part(
                conn, upload_id, writing.version, final, session.size + written
            )
        if version is None:
            await self._discard_part(writing)
            raise await self._lost(session)
        self._continue_hash(session, final, hasher)
        crashpoints.reach("upload.recorded")
        return session.size + written

    async def _write_part(
        self, session: UploadSession, chunks: AsyncIterable[bytes], length: int | None
    ) -> tuple[_Writing, int, Hasher | None]:
        """Stream a new part, recording its progress; the caller records its end."""
        writing = _Writing(session, secrets.token_hex(16), session.version)
        hasher = self._hash_to_continue(session)

        async def checkpoint(durable: int) -> None:
            part = UploadPart(writing.name, durable, closed=False)
            async with self.db.write() as conn:
                version = await uploads.record_part(
                    conn, session.id, writing.version, part, session.size + durable
                )
            if version is None:
                raise await self._lost(session)
            writing.version, writing.recorded = version, True
            crashpoints.reach("upload.checkpointed")

        keep = False
        try:
            written = await self.store.write_part(
                session.id,
                writing.name,
                _bounded(chunks, length),
                hasher,
                checkpoint,
                self.checkpoint_bytes,
                self.checkpoint_seconds,
            )
            if length is not None and written != length:
                raise SizeInvalid(
                    f"received {written} bytes but the request announced {length}",
                    {"received": written, "announced": length},
                )
            keep = written > 0  # an empty chunk adds nothing to record
        except UploadMissing as exc:
            raise BlobUploadUnknown(
                f"upload {session.id} has no data; start a new one", {"upload": session.id}
            ) from exc
        finally:
            # A failed chunk's part goes, unless a checkpoint made it part of the upload.
            if not keep:
                await self._discard_part(writing)
        return writing, written, hasher

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
            BlobUploadInvalid: the upload's bytes are gone (the upload is discarded).
            InsufficientStorage: the storage is full or read-only (the upload stays as it was).
        """
        session = await self.get_upload(path, upload_id)
        version, last, hasher = session.version, None, self._hash_to_continue(session)
        if chunks is not None:
            _check_start(session, start)
            writing, written, hasher = await self._write_part(session, chunks, length)
            version = writing.version
            if written or writing.recorded:
                last = UploadPart(writing.name, written, closed=True)
        async with self.db.read() as conn:
            current = await uploads.find_upload(conn, session.repository_id, upload_id)
            parts = await uploads.list_parts(conn, upload_id)
        if current is None or current.version != version:
            raise await self._lost(session)
        parts = [p for p in parts if last is None or p.name != last.name]
        parts += [last] if last is not None else []
        if not self._trusted(upload_id, parts, digest, hasher, last):
            hasher = None
        await self._publish(upload_id, parts, digest, hasher)
        crashpoints.reach("upload.published")
        async with self.db.write() as conn:
            await self._confirm_published(conn, upload_id, parts, digest, hasher)
            await repo.record_blob(conn, digest, sum(p.size for p in parts))
            await repo.link_blob(conn, session.repository_id, digest)
            if not await uploads.delete_upload(conn, upload_id, version):
                raise await self._lost(session)
            crashpoints.reach("upload.finishing")
        self._hashes.pop(upload_id, None)
        await self.store.delete_upload(upload_id)

    async def _publish(
        self,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None,
    ) -> None:
        try:
            await self.store.commit_parts(upload_id, parts, digest, hasher)
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

    async def _confirm_published(
        self,
        conn: AsyncConnection,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None,
    ) -> None:
        """Under the digest's lock, make sure the bytes are there: collection may have removed
        an unreferenced copy between publishing and now (the parts are still at hand)."""
        await digest_locks.share_digests(conn, [digest])
        try:
            await self.store.stat(digest)
        except ObjectMissing:
            await self.store.commit_parts(upload_id, parts, digest, hasher)

    async def upload_whole(
        self, path: RepoPath, digest: Digest, chunks: AsyncIterable[bytes]
    ) -> None:
        """Monolithic upload (POST with ``?digest=``): no session, one write transaction.

        Raises:
            FeedUnknown, FeedInactive: the feed is missing or disabled.
            DigestInvalid: the bytes do not match ``digest``.
            InsufficientStorage: the storage is full or read-only.
        """
        async with self.db.read() as conn:
            await lookup.get_feed(conn, path.feed)  # before reading a byte of the body
        scratch = str(uuid.uuid4())  # an upload folder without a session: gc removes leftovers
        await self.store.create_upload(scratch)
        try:
            name, hasher = secrets.token_hex(16), new_hasher(digest.algorithm)
            size = await self.store.write_part(scratch, name, chunks, hasher)
            parts = [UploadPart(name, size)]
            try:
                await self.store.commit_parts(scratch, parts, digest, hasher)
            except DigestMismatch as exc:
                raise DigestInvalid(
                    f"the uploaded bytes have digest {exc.actual}, not {digest}",
                    {"expected": str(digest), "actual": str(exc.actual)},
                ) from exc
            crashpoints.reach("upload.published")
            async with self.db.write() as conn:
                repository = await lookup.ensure_repository(conn, path)
                await self._confirm_published(conn, scratch, parts, digest, hasher)
                await repo.record_blob(conn, digest, size)
                await repo.link_blob(conn, repository.id, digest)
                crashpoints.reach("upload.finishing")
        finally:
            await self.store.delete_upload(scratch)

    async def cancel(self, path: RepoPath, upload_id: str) -> None:
        """Drop an upload session and its bytes.

        Raises:
            BlobUploadUnknown: no such upload.
        """
        await self.get_upload(path, upload_id)
        await self._forget(upload_id)

    # --- helpers ---------------------------------------------------------------------------

    async def _forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        async with self.db.write() as conn:
            await uploads.delete_upload(conn, upload_id)
        await self.store.delete_upload(upload_id)

    async def _discard_part(self, writing: _Writing) -> None:
        """Delete a part nothing refers to (one that was never recorded)."""
        if not writing.recorded:
            with contextlib.suppress(OSError):
                await self.store.delete_part(writing.session.id, writing.name)

    async def _lost(self, session: UploadSession) -> RangeInvalid:
        """The error for a request whose upload another request changed first."""
        async with self.db.read() as conn:
            current = await uploads.find_upload(conn, session.repository_id, session.id)
        size = current.size if current is not None else session.size
        return RangeInvalid(
            f"another request wrote this upload first; GET its status and resume from byte {size}",
            {"upload": session.id, "size": size},
        )

    def _hash_to_continue(self, session: UploadSession) -> Hasher | None:
        """A copy of this process's running hash when it may still cover the whole upload."""
        running = self._hashes.get(session.id)
        if running is None or sum(size for _, size in running.parts) != session.size:
            return None
        return running.hasher.copy()

    def _continue_hash(
        self, session: UploadSession, part: UploadPart, hasher: Hasher | None
    ) -> None:
        running = self._hashes.pop(session.id, None)
        if running is None or hasher is None:
            return
        self._remember(
            session.id,
            _RunningHash((*running.parts, (part.name, part.size)), running.algorithm, hasher),
        )

    def _trusted(
        self,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None,
        last: UploadPart | None,
    ) -> bool:
        """True when ``hasher`` saw exactly the bytes of ``parts``, in order."""
        running = self._hashes.get(upload_id)
        if hasher is None or running is None or running.algorithm != digest.algorithm:
            return False
        seen = running.parts + (((last.name, last.size),) if last is not None else ())
        return seen == _identity(parts)

    def _remember(self, upload_id: str, running: _RunningHash) -> None:
        self._hashes[upload_id] = running
        while len(self._hashes) > _HASHER_CACHE_SIZE:
            self._hashes.popitem(last=False)


def _check_start(session: UploadSession, start: int | None) -> None:
    # distribution-spec: 416 on an out-of-order chunk, with the Range to resume from
    if start is not None and start != session.size:
        raise RangeInvalid(
            f"chunk starts at byte {start} but the upload holds {session.size} bytes; "
            f"resume from {session.size}",
            {"size": session.size},
        )
