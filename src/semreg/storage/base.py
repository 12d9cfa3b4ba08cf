"""The blob store interface: content-addressed bytes and in-progress uploads.

Implementations: ``filesystem.py`` (default) and ``memory.py`` (tests); every one passes
``tests/storage_conformance.py``. Bytes become visible under a digest only after their digest and
size were verified. Imports: domain, stdlib.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Protocol

from semreg.domain.digest import Digest, Hasher


class StorageError(Exception):
    """Base of the low-level storage errors; services translate them to registry errors."""


class ObjectMissing(StorageError):
    """No blob is stored under that digest."""


class UploadMissing(StorageError):
    """No upload by that id, or it is shorter than the offset asked for."""


class DigestMismatch(StorageError):
    """The bytes do not hash to the digest they were committed under."""

    def __init__(self, expected: Digest, actual: Digest) -> None:
        super().__init__(f"expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class BlobStore(Protocol):
    """Content-addressed blob bytes plus the scratch space of uploads."""

    async def stat(self, digest: Digest) -> int:
        """The size of a stored blob. Raises ObjectMissing."""
        ...

    def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``start`` to ``end`` (exclusive; None = the end). Raises ObjectMissing."""
        ...

    async def read_bytes(self, digest: Digest) -> bytes:
        """A small blob (a manifest) whole. Raises ObjectMissing."""
        ...

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        """Store a small blob after checking its digest. Idempotent. Raises DigestMismatch."""
        ...

    async def delete(self, digest: Digest) -> None:
        """Remove a blob's bytes; removing an absent blob is not an error."""
        ...

    def iter_digests(self) -> AsyncIterator[Digest]:
        """Every stored blob's digest, in no particular order."""
        ...

    async def modified_at(self, digest: Digest) -> datetime:
        """When a blob's bytes were last written (garbage collection's grace period).

        Raises ObjectMissing."""
        ...

    async def create_upload(self, upload_id: str) -> None:
        """Start an empty upload."""
        ...

    async def append_upload(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        hasher: Hasher | None = None,
    ) -> int:
        """Write ``chunks`` at ``offset`` (dropping anything past it) and return the new size.

        ``hasher``, when given, is fed the same bytes. Raises UploadMissing.
        """
        ...

    async def upload_size(self, upload_id: str) -> int:
        """Bytes written so far. Raises UploadMissing."""
        ...

    async def commit_upload(
        self, upload_id: str, digest: Digest, size: int, hasher: Hasher | None = None
    ) -> None:
        """Verify the first ``size`` bytes against ``digest`` and publish them as that blob.

        ``hasher`` is used instead of re-reading when it saw exactly those bytes. The upload is
        removed either way. Raises UploadMissing, DigestMismatch.
        """
        ...

    async def delete_upload(self, upload_id: str) -> None:
        """Drop an upload's bytes; an absent upload is not an error."""
        ...

    def iter_uploads(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every upload's id with when its bytes were last written, in no particular order."""
        ...
