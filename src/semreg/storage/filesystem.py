"""Blob store on a local folder: write to a temporary file, fsync, ``os.replace`` into place.

Blocking file I/O runs in worker threads (``anyio.to_thread``); incoming chunks are gathered into
1 MiB writes so a thread hop is paid per MiB, not per network read. Imports: domain, storage.base,
storage.layout, anyio, stdlib.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

import anyio.to_thread

from semreg.domain.digest import Digest, Hasher, compute_digest, new_hasher
from semreg.storage import layout
from semreg.storage.base import DigestMismatch, ObjectMissing, UploadMissing

WRITE_BATCH: Final = 1024 * 1024
READ_CHUNK: Final = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(handle: BinaryIO, data: bytes | bytearray, hasher: Hasher | None) -> None:
    handle.write(data)
    if hasher is not None:
        hasher.update(data)


class FilesystemBlobStore:
    """``BlobStore`` on a folder; safe for several processes sharing that folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "uploads").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key

    async def stat(self, digest: Digest) -> int:
        try:
            return (
                await anyio.to_thread.run_sync(os.stat, self._path(layout.blob_key(digest)))
            ).st_size
        except FileNotFoundError:
            raise ObjectMissing(str(digest)) from None

    async def read(
        self, digest: Digest, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(layout.blob_key(digest))
        try:
            handle = await anyio.to_thread.run_sync(open, path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(str(digest)) from None
        try:
            await anyio.to_thread.run_sync(handle.seek, start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await anyio.to_thread.run_sync(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await anyio.to_thread.run_sync(handle.close)

    async def read_bytes(self, digest: Digest) -> bytes:
        try:
            return await anyio.to_thread.run_sync(self._path(layout.blob_key(digest)).read_bytes)
        except FileNotFoundError:
            raise ObjectMissing(str(digest)) from None

    def _publish(self, source: Path, digest: Digest) -> None:
        target = self._path(layout.blob_key(digest))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_dir(target.parent)

    def _put_bytes(self, digest: Digest, data: bytes) -> None:
        if self._path(layout.blob_key(digest)).exists():
            return
        tmp = self._path(layout.scratch_key(secrets.token_hex(16)))
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._publish(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        actual = compute_digest(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        await anyio.to_thread.run_sync(self._put_bytes, digest, data)

    async def delete(self, digest: Digest) -> None:
        path = self._path(layout.blob_key(digest))
        with contextlib.suppress(FileNotFoundError):
            await anyio.to_thread.run_sync(path.unlink)

    async def iter_digests(self) -> AsyncIterator[Digest]:
        def scan() -> list[Digest]:
            found: list[Digest] = []
            base = self.root / layout.blob_prefix()
            for algorithm_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                for shard in sorted(p for p in algorithm_dir.iterdir() if p.is_dir()):
                    found.extend(Digest(algorithm_dir.name, f.name) for f in shard.iterdir())
            return found

        for digest in await anyio.to_thread.run_sync(scan):
            yield digest

    async def modified_at(self, digest: Digest) -> datetime:
        try:
            info = await anyio.to_thread.run_sync(os.stat, self._path(layout.blob_key(digest)))
        except FileNotFoundError:
            raise ObjectMissing(str(digest)) from None
        return datetime.fromtimestamp(info.st_mtime, UTC)

    async def create_upload(self, upload_id: str) -> None:
        def create() -> None:
            path = self._path(layout.upload_key(upload_id))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")

        await anyio.to_thread.run_sync(create)

    def _open_for_append(self, upload_id: str, offset: int) -> BinaryIO:
        try:
            handle = open(self._path(layout.upload_key(upload_id)), "r+b")  # noqa: SIM115
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        size = os.fstat(handle.fileno()).st_size
        if size < offset:
            handle.close()
            raise UploadMissing(f"{upload_id} holds {size} bytes, not {offset}")
        # Bytes past the committed offset belong to a chunk that never completed.
        handle.truncate(offset)
        handle.seek(offset)
        return handle

    async def append_upload(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        hasher: Hasher | None = None,
    ) -> int:
        handle = await anyio.to_thread.run_sync(self._open_for_append, upload_id, offset)
        written = offset
        try:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= WRITE_BATCH:
                    await anyio.to_thread.run_sync(_write, handle, batch, hasher)
                    written += len(batch)
                    batch = bytearray()
            if batch:
                await anyio.to_thread.run_sync(_write, handle, batch, hasher)
                written += len(batch)
        finally:
            await anyio.to_thread.run_sync(handle.close)
        return written

    async def upload_size(self, upload_id: str) -> int:
        try:
            path = self._path(layout.upload_key(upload_id))
            return (await anyio.to_thread.run_sync(os.stat, path)).st_size
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None

    def _commit(self, upload_id: str, digest: Digest, size: int, hasher: Hasher | None) -> None:
        path = self._path(layout.upload_key(upload_id))
        try:
            handle = open(path, "r+b")  # noqa: SIM115
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        with handle:
            if os.fstat(handle.fileno()).st_size < size:
                raise UploadMissing(f"{upload_id} is shorter than {size} bytes")
            handle.truncate(size)
            if hasher is None:
                hasher = new_hasher(digest.algorithm)
                while block := handle.read(READ_CHUNK):
                    hasher.update(block)
            actual = Digest(digest.algorithm, hasher.hexdigest())
            if actual != digest:
                raise DigestMismatch(digest, actual)
            handle.flush()
            os.fsync(handle.fileno())
        self._publish(path, digest)

    async def commit_upload(
        self, upload_id: str, digest: Digest, size: int, hasher: Hasher | None = None
    ) -> None:
        try:
            await anyio.to_thread.run_sync(self._commit, upload_id, digest, size, hasher)
        finally:
            await self.delete_upload(upload_id)

    async def delete_upload(self, upload_id: str) -> None:
        def remove() -> None:
            directory = self._path(layout.upload_dir(upload_id))
            for child in directory.glob("*"):
                child.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError, OSError):
                directory.rmdir()

        await anyio.to_thread.run_sync(remove)

    async def iter_uploads(self) -> AsyncIterator[tuple[str, datetime]]:
        def scan() -> list[tuple[str, datetime]]:
            found: list[tuple[str, datetime]] = []
            base = self.root / layout.uploads_prefix()
            if not base.is_dir():
                return found
            for directory in base.iterdir():
                if not layout.is_upload_id(directory.name):
                    continue  # scratch files of put_bytes
                data = directory / "data"
                try:
                    written = (data if data.exists() else directory).stat().st_mtime
                except FileNotFoundError:
                    continue  # removed while we looked
                found.append((directory.name, datetime.fromtimestamp(written, UTC)))
            return found

        for item in await anyio.to_thread.run_sync(scan):
            yield item
