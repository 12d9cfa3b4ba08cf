"""The blob store interface: content-addressed bytes and in-progress uploads.

Implementations: ``filesystem.py`` (default) and ``memory.py`` (tests); every one passes
``tests/storage_conformance.py``. Bytes become visible under a digest only after their digest and
size were verified, and bytes published under a digest are never replaced or rewritten.

An upload is a sequence of *parts*, one per writing request. Each part is created and written by
one writer only, front to back; the metadata database records which parts (and how many bytes
of each) make up the upload. A writer that lost a race therefore writes only into a part that
nothing refers to, and cannot change bytes anyone else relies on. Disk-full and read-only
conditions raise ``domain.errors.InsufficientStorage`` directly: their meaning does not depend on
the use case. Imports: domain, stdlib.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeAlias

from semreg.domain.digest import Digest, Hasher
from semreg.domain.inventory import UploadPart

__all__ = [
    "BlobStore",
    "Checkpoint",
    "DigestMismatch",
    "ObjectMissing",
    "StorageError",
    "UploadMissing",
    "UploadPart",
]


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


Checkpoint: TypeAlias = Callable[[int], Awaitable[None]]
"""Called with the part's durable size while a part is written (to record progress)."""


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
        """Store a small blob after checking its digest; an existing blob is kept as it is.

        Raises:
            DigestMismatch: ``data`` does not hash to ``digest``.
            InsufficientStorage: the storage is full or read-only.
        """
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
        """Make room for an upload's parts.

        Raises:
            InsufficientStorage: the storage is full or read-only.
        """
        ...

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
        """Write ``chunks`` into a new part of an upload and return its size.

        The part is created here and written only by this call, front to back: bytes of it that
        a checkpoint reported never change afterwards. Once ``checkpoint_bytes`` (when set) have
        come since the last checkpoint, and ``checkpoint_seconds`` have passed, the bytes so far
        are made durable and ``checkpoint(size)`` is awaited; an exception it raises stops the
        write. ``hasher``, when given, is fed the same bytes. The part is made durable whole only
        when it is published.

        Raises:
            UploadMissing: the upload is gone (or the part name is taken).
            InsufficientStorage: the storage is full or read-only.
        """
        ...

    async def delete_part(self, upload_id: str, part: str) -> None:
        """Drop a part nothing refers to; an absent part is not an error."""
        ...

    async def commit_parts(
        self,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None = None,
    ) -> None:
        """Publish the first ``size`` bytes of each part, in order, as the blob ``digest``.

        The bytes are checked against ``digest`` (``hasher`` is used instead when it saw exactly
        those bytes). A blob already stored under ``digest`` is kept as it is: published bytes are
        never replaced. The upload itself is left in place (the caller removes it once the
        metadata is committed), so a failed or repeated commit can simply be retried.

        Raises:
            UploadMissing: a part is missing or shorter than recorded.
            DigestMismatch: the bytes do not hash to ``digest``.
            InsufficientStorage: the storage is full or read-only.
        """
        ...

    async def delete_upload(self, upload_id: str) -> None:
        """Drop an upload's bytes; an absent upload is not an error."""
        ...

    def iter_uploads(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every upload's id with when its bytes were last written, in no particular order."""
        ...
