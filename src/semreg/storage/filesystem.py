"""Blob store on a local folder: parts written once, front to back; blobs published by hard link.

- A blob is published with ``os.link``, which cannot replace: when the digest is already stored,
  the stored file is kept. A published file is never opened for writing again.
- Each part of an upload is a file created with ``O_EXCL`` by the one request writing it, which
  only appends; bytes a checkpoint reported are fsynced before they are reported, and a part is
  fsynced again (whole) before it is published.
- A single finished part is published as it is (no copy); several parts, or a part whose writer
  did not finish, are first copied (the counted bytes only) into a new file of the upload.
- Files are created 0600 and folders 0700: blobs may be private images.

Blocking file I/O runs in worker threads (``anyio.to_thread``); incoming chunks are gathered into
1 MiB writes so a thread hop is paid per MiB, not per network read. Imports: domain,
storage.base, storage.layout, anyio, stdlib.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

import anyio.to_thread

from semreg import crashpoints
from semreg.domain.digest import Digest, Hasher, compute_digest, new_hasher
from semreg.domain.errors import InsufficientStorage
from semreg.storage import layout
from semreg.storage.base import Checkpoint, DigestMismatch, ObjectMissing, UploadMissing, UploadPart

WRITE_BATCH: Final = 1024 * 1024
READ_CHUNK: Final = 1024 * 1024
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_FULL: Final = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
}


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn disk-full, over-quota and read-only errors into ``InsufficientStorage``."""
    try:
        yield
    except OSError as exc:
        reason = _FULL.get(exc.errno or 0)
        if reason is None:
            raise
        name = errno.errorcode.get(exc.errno or 0, "")
        raise InsufficientStorage(
            f"the registry cannot store data: {reason} ({name}); free space or make the "
            "storage writable, then retry",
            {"reason": name},
        ) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_exclusive(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return os.fdopen(fd, "wb")


def _write(handle: BinaryIO, data: bytes | bytearray, hasher: Hasher | None) -> None:
    handle.write(data)
    if hasher is not None:
        hasher.update(data)


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _prefix(source: Path, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of ``source`` in blocks (UploadMissing when it holds fewer)."""
    try:
        handle = open(source, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise UploadMissing(f"part {source.name} is missing") from None
    with handle:
        remaining = size
        while remaining:
            block = handle.read(min(READ_CHUNK, remaining))
            if not block:
                raise UploadMissing(f"part {source.name} holds fewer than {size} bytes")
            remaining -= len(block)
            yield block


def _copy_prefix(source: Path, size: int, target: BinaryIO, hasher: Hasher | None) -> None:
    """Append the first ``size`` bytes of ``source`` to ``target``, feeding ``hasher``; without
    a hasher the kernel copies (``copy_file_range``), the bytes never pass through Python."""
    if hasher is None:
        _copy_in_kernel(source, size, target)
        return
    for block in _prefix(source, size):
        target.write(block)
        hasher.update(block)


def _copy_in_kernel(source: Path, size: int, target: BinaryIO) -> None:
    target.flush()
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError:
        raise UploadMissing(f"part {source.name} is missing") from None
    try:
        offset = 0
        while offset < size:
            copied = os.copy_file_range(fd, target.fileno(), size - offset, offset)
            if copied == 0:
                raise UploadMissing(f"part {source.name} holds fewer than {size} bytes")
            offset += copied
    finally:
        os.close(fd)
    target.seek(0, os.SEEK_END)


def _hash_prefix(source: Path, size: int, algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    for block in _prefix(source, size):
        hasher.update(block)
    return hasher.hexdigest()


class FilesystemBlobStore:
    """``BlobStore`` on a folder; safe for several processes sharing that folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in (root, root / "blobs", root / "uploads"):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key

    async def stat(self, digest: Digest) -> int:
        try:
            # Inline: a stat is a few microseconds of metadata, far less than a thread hop.
            return os.stat(self._path(layout.blob_key(digest))).st_size
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
        """Link ``source`` under ``digest`` unless a blob is there already (it is kept)."""
        target = self._path(layout.blob_key(digest))
        target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            return  # content-addressed: the stored bytes are the same bytes, and they stay
        _fsync_dir(target.parent)

    def _put_bytes(self, digest: Digest, data: bytes) -> None:
        if self._path(layout.blob_key(digest)).exists():
            return
        # In an upload folder without a session: gc removes it if a crash leaves it behind.
        scratch = self._path(layout.scratch_key(str(uuid.uuid4())))
        scratch_dir = scratch.parent
        scratch_dir.mkdir(mode=DIR_MODE)
        try:
            with _create_exclusive(scratch) as handle:
                handle.write(data)
                _sync(handle)
            self._publish(scratch, digest)
        finally:
            scratch.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                scratch_dir.rmdir()

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        actual = compute_digest(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        with storage_errors():
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

    # --- uploads -------------------------------------------------------------------------------

    async def create_upload(self, upload_id: str) -> None:
        directory = self._path(layout.upload_dir(upload_id))
        with storage_errors():
            await anyio.to_thread.run_sync(lambda: directory.mkdir(mode=DIR_MODE))

    def _open_part(self, upload_id: str, part: str) -> BinaryIO:
        try:
            return _create_exclusive(self._path(layout.part_key(upload_id, part)))
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        except FileExistsError:
            raise UploadMissing(f"part {part} of {upload_id} exists already") from None

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
        with storage_errors():
            handle = await anyio.to_thread.run_sync(self._open_part, upload_id, part)
            written = since_checkpoint = 0
            last_checkpoint = time.monotonic()
            try:
                batch = bytearray()
                async for chunk in chunks:
                    batch += chunk
                    if len(batch) < WRITE_BATCH:
                        continue
                    await anyio.to_thread.run_sync(_write, handle, batch, hasher)
                    written += len(batch)
                    since_checkpoint += len(batch)
                    batch = bytearray()
                    crashpoints.reach("upload.write")
                    if (
                        checkpoint is not None
                        and since_checkpoint >= checkpoint_bytes > 0
                        and time.monotonic() - last_checkpoint >= checkpoint_seconds
                    ):
                        await anyio.to_thread.run_sync(_sync, handle)
                        await checkpoint(written)
                        since_checkpoint, last_checkpoint = 0, time.monotonic()
                if batch:
                    await anyio.to_thread.run_sync(_write, handle, batch, hasher)
                    written += len(batch)
                # Flushed to the OS, not fsynced: a killed process loses nothing of it, and a
                # part is fsynced before it is published (a power cut may cost a chunk sent
                # since the last checkpoint; the digest check at the end would tell).
                await anyio.to_thread.run_sync(handle.flush)
            finally:
                await anyio.to_thread.run_sync(handle.close)
        return written

    async def delete_part(self, upload_id: str, part: str) -> None:
        path = self._path(layout.part_key(upload_id, part))
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    def _commit(
        self, upload_id: str, parts: Sequence[UploadPart], digest: Digest, hasher: Hasher | None
    ) -> None:
        paths = [self._path(layout.part_key(upload_id, p.name)) for p in parts]
        source = _direct_source(parts, paths)
        assembled: Path | None = None
        try:
            if source is None:
                # Several parts, or a part whose writer never finished (and might in theory still
                # be appending): publish a copy of exactly the counted bytes instead.
                assembled = self._path(layout.part_key(upload_id, secrets.token_hex(16)))
                feed: Hasher | None = None
                if hasher is None:  # hash while copying: the bytes are read once
                    hasher = feed = new_hasher(digest.algorithm)
                with _create_exclusive(assembled) as handle:
                    for part, path in zip(parts, paths, strict=True):
                        _copy_prefix(path, part.size, handle, feed)
                    _sync(handle)
                source = assembled
                found = hasher.hexdigest()
            else:
                if hasher is not None:
                    found = hasher.hexdigest()
                else:
                    found = _hash_prefix(source, parts[0].size, digest.algorithm)
                _fsync_file(source)  # parts are not fsynced as they are written
            actual = Digest(digest.algorithm, found)
            if actual != digest:
                raise DigestMismatch(digest, actual)
            self._publish(source, digest)
        finally:
            if assembled is not None:
                assembled.unlink(missing_ok=True)

    async def commit_parts(
        self,
        upload_id: str,
        parts: Sequence[UploadPart],
        digest: Digest,
        hasher: Hasher | None = None,
    ) -> None:
        with storage_errors():
            await anyio.to_thread.run_sync(self._commit, upload_id, parts, digest, hasher)

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
                    continue
                try:
                    written = max(
                        [directory.stat().st_mtime]
                        + [f.stat().st_mtime for f in directory.iterdir()]
                    )
                except FileNotFoundError:
                    continue  # removed while we looked
                found.append((directory.name, datetime.fromtimestamp(written, UTC)))
            return found

        for item in await anyio.to_thread.run_sync(scan):
            yield item


def _direct_source(parts: Sequence[UploadPart], paths: Sequence[Path]) -> Path | None:
    """The part file itself when it can be published as it is: one finished part, whole."""
    if len(parts) != 1 or not parts[0].closed:
        return None
    try:
        size = os.stat(paths[0]).st_size
    except FileNotFoundError:
        raise UploadMissing(f"part {parts[0].name} is missing") from None
    return paths[0] if size == parts[0].size else None
