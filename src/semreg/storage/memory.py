"""Dict-backed blob store for tests; passes the same conformance suite as the filesystem store.

Imports: domain, storage.base, stdlib.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime

from semreg.domain.digest import Digest, Hasher, compute_digest
from semreg.storage.base import Checkpoint, DigestMismatch, ObjectMissing, UploadMissing, UploadPart


class MemoryBlobStore:
    """``BlobStore`` in process memory: for unit tests only, never for a server."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.written: dict[Digest, datetime] = {}
        self.uploads: dict[str, dict[str, bytearray]] = {}
        self.upload_written: dict[str, datetime] = {}

    async def stat(self, digest: Digest) -> int:
        return len(await self.read_bytes(digest))

    async def read(
        self, digest: Digest, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        data = await self.read_bytes(digest)
        yield data[start:end]

    async def read_bytes(self, digest: Digest) -> bytes:
        try:
            return self.blobs[digest]
        except KeyError:
            raise ObjectMissing(str(digest)) from None

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        actual = compute_digest(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        if digest not in self.blobs:  # published bytes are never replaced
            self.blobs[digest] = bytes(data)
            self.written[digest] = datetime.now(UTC)

    async def delete(self, digest: Digest) -> None:
        self.blobs.pop(digest, None)
        self.written.pop(digest, None)

    async def iter_digests(self) -> AsyncIterator[Digest]:
        for digest in list(self.blobs):
            yield digest

    async def modified_at(self, digest: Digest) -> datetime:
        await self.read_bytes(digest)
        return self.written[digest]

    async def create_upload(self, upload_id: str) -> None:
        self.uploads[upload_id] = {}
        self.upload_written[upload_id] = datetime.now(UTC)

    def _parts(self, upload_id: str) -> dict[str, bytearray]:
        try:
            return self.uploads[upload_id]
        except KeyError:
            raise UploadMissing(upload_id) from None

    async def write_part(
        self,
        upload_id: str,
        part: str,
        chunks: AsyncIterable[bytes],
        hasher: Hasher | None = None,
        checkpoint: Checkpoint | None = None,
        checkpoint_bytes: int = 0,
        checkpoint_seconds: float = 0.0,
    ) -> int:
        parts = self._parts(upload_id)
        if part in parts:
            raise UploadMissing(f"part {part} of {upload_id} exists already")
        data = parts[part] = bytearray()
        since_checkpoint, last_checkpoint = 0, time.monotonic()
        async for chunk in chunks:
            data += chunk
            since_checkpoint += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            if (
                checkpoint is not None
                and since_checkpoint >= checkpoint_bytes > 0
                and time.monotonic() - last_checkpoint >= checkpoint_seconds
            ):
                await checkpoint(len(data))
                since_checkpoint, last_checkpoint = 0, time.monotonic()
        self.upload_written[upload_id] = datetime.now(UTC)
        return len(data)

    async def delete_part(self, upload_id: str, part: str) -> None:
        self.uploads.get(upload_id, {}).pop(part, None)

    async def commit_parts(
        self,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None = None,
    ) -> None:
        stored = self._parts(upload_id)
        data = bytearray()
        for part in parts:
            found = stored.get(part.name)
            if found is None or len(found) < part.size:
                raise UploadMissing(f"part {part.name} is missing or short")
            data += found[: part.size]
        actual = (
            Digest(digest.algorithm, hasher.hexdigest())
            if hasher is not None
            else compute_digest(bytes(data), digest.algorithm)
        )
        if actual != digest:
            raise DigestMismatch(digest, actual)
        if digest not in self.blobs:
            self.blobs[digest] = bytes(data)
            self.written[digest] = datetime.now(UTC)

    async def delete_upload(self, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.upload_written.pop(upload_id, None)

    async def iter_uploads(self) -> AsyncIterator[tuple[str, datetime]]:
        for upload_id in list(self.uploads):
            yield upload_id, self.upload_written[upload_id]
