"""Dict-backed blob store for tests; passes the same conformance suite as the filesystem store.

Imports: domain, storage.base, stdlib.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime

from semreg.domain.digest import Digest, Hasher, compute_digest
from semreg.storage.base import DigestMismatch, ObjectMissing, UploadMissing


class MemoryBlobStore:
    """``BlobStore`` in process memory: for unit tests only, never for a server."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.written: dict[Digest, datetime] = {}
        self.uploads: dict[str, bytearray] = {}
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
        self.uploads[upload_id] = bytearray()
        self.upload_written[upload_id] = datetime.now(UTC)

    def _upload(self, upload_id: str) -> bytearray:
        try:
            return self.uploads[upload_id]
        except KeyError:
            raise UploadMissing(upload_id) from None

    async def append_upload(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        hasher: Hasher | None = None,
    ) -> int:
        data = self._upload(upload_id)
        if len(data) < offset:
            raise UploadMissing(f"{upload_id} holds {len(data)} bytes, not {offset}")
        del data[offset:]
        async for chunk in chunks:
            data += chunk
            if hasher is not None:
                hasher.update(chunk)
        self.upload_written[upload_id] = datetime.now(UTC)
        return len(data)

    async def upload_size(self, upload_id: str) -> int:
        return len(self._upload(upload_id))

    async def commit_upload(
        self, upload_id: str, digest: Digest, size: int, hasher: Hasher | None = None
    ) -> None:
        try:
            data = bytes(self._upload(upload_id))
            if len(data) < size:
                raise UploadMissing(f"{upload_id} is shorter than {size} bytes")
            data = data[:size]
            actual = (
                Digest(digest.algorithm, hasher.hexdigest())
                if hasher is not None
                else compute_digest(data, digest.algorithm)
            )
            if actual != digest:
                raise DigestMismatch(digest, actual)
            self.blobs[digest] = data
            self.written[digest] = datetime.now(UTC)
        finally:
            self.uploads.pop(upload_id, None)
            self.upload_written.pop(upload_id, None)

    async def delete_upload(self, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.upload_written.pop(upload_id, None)

    async def iter_uploads(self) -> AsyncIterator[tuple[str, datetime]]:
        for upload_id in list(self.uploads):
            yield upload_id, self.upload_written[upload_id]
