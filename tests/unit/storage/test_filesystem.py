"""The storage conformance suite on the filesystem store, plus its on-disk guarantees."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from semreg.domain.digest import Digest, compute_digest
from semreg.domain.errors import InsufficientStorage
from semreg.storage.base import DigestMismatch, ObjectMissing, UploadPart
from semreg.storage.filesystem import FilesystemBlobStore
from tests.storage_conformance import *  # noqa: F403
from tests.storage_conformance import digests, new_upload, pattern, put, run, write


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def test_blob_path_layout(store: FilesystemBlobStore, tmp_path: Path) -> None:
    digest = put(store, b"layout")
    path = tmp_path / "blobs" / "sha256" / digest.hex[:2] / digest.hex
    assert path.read_bytes() == b"layout"
    sha512 = put(store, b"layout", "sha512")
    path512 = tmp_path / "blobs" / "sha512" / sha512.hex[:2] / sha512.hex
    assert path512.read_bytes() == b"layout"
    assert files_under(tmp_path / "blobs") == sorted([path, path512])


def blob_path(root: Path, digest: Digest) -> Path:
    return root / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex


def test_a_committed_part_lands_in_the_layout(store: FilesystemBlobStore, tmp_path: Path) -> None:
    data = pattern(3000, b"fs")
    upload_id = new_upload(store)
    assert (tmp_path / "uploads" / upload_id).is_dir()
    part = write(store, upload_id, data)
    assert (tmp_path / "uploads" / upload_id / f"part-{part.name}").read_bytes() == data
    digest = compute_digest(data)
    run(store.commit_parts(upload_id, [part], digest))
    assert blob_path(tmp_path, digest).read_bytes() == data
    run(store.delete_upload(upload_id))
    assert list((tmp_path / "uploads").iterdir()) == []
    assert blob_path(tmp_path, digest).read_bytes() == data


def test_files_are_private(store: FilesystemBlobStore, tmp_path: Path) -> None:
    digest = put(store, b"private")
    upload_id = new_upload(store)
    part = write(store, upload_id, b"in progress")
    for path in (
        blob_path(tmp_path, digest),
        tmp_path / "uploads" / upload_id / f"part-{part.name}",
    ):
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
    for folder in (tmp_path / "blobs", tmp_path / "uploads", tmp_path / "uploads" / upload_id):
        assert folder.stat().st_mode & 0o077 == 0, oct(folder.stat().st_mode)


def test_a_published_blob_is_never_replaced(store: FilesystemBlobStore, tmp_path: Path) -> None:
    # Whatever sits under a digest stays: a commit or put of that digest never rewrites it
    # (were it damaged, repairing it is an operator's decision, not a pusher's).
    data = b"the real layer"
    digest = compute_digest(data)
    path = blob_path(tmp_path, digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"already here")
    before = path.stat()
    run(store.put_bytes(digest, data))
    upload_id = new_upload(store)
    run(store.commit_parts(upload_id, [write(store, upload_id, data)], digest))
    after = path.stat()
    assert path.read_bytes() == b"already here"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_part_still_being_written_is_published_as_a_copy(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    # A part recorded at a checkpoint may still be appended to by its writer: what is
    # published must be a copy of the recorded bytes, never the file the writer holds.
    upload_id = new_upload(store)
    part = write(store, upload_id, b"recorded")
    digest = compute_digest(b"recorded")
    run(store.commit_parts(upload_id, [UploadPart(part.name, 8, closed=False)], digest))
    with open(tmp_path / "uploads" / upload_id / f"part-{part.name}", "ab") as writer:
        writer.write(b" and more")
    assert run(store.read_bytes(digest)) == b"recorded"
    assert blob_path(tmp_path, digest).stat().st_nlink == 1


def test_no_temporary_files_remain(store: FilesystemBlobStore, tmp_path: Path) -> None:
    put(store, b"small")
    put(store, b"small")
    with pytest.raises(DigestMismatch):
        run(store.put_bytes(compute_digest(b"x"), b"y"))
    several = new_upload(store)
    parts = [write(store, several, b"ok"), write(store, several, b" too")]
    run(store.commit_parts(several, parts, compute_digest(b"ok too")))
    with pytest.raises(DigestMismatch):
        run(store.commit_parts(several, parts, compute_digest(b"ok too!")))
    assert sorted(p.name for p in (tmp_path / "uploads" / several).iterdir()) == sorted(
        f"part-{p.name}" for p in parts
    )
    run(store.delete_upload(several))
    assert list((tmp_path / "uploads").iterdir()) == []


@pytest.fixture
def crash_on_publish(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Make ``os.link`` (the publishing step) fail, as a crash or full disk would."""
    calls: list[tuple[str, str]] = []

    def fail(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        calls.append((str(source), str(target)))
        raise OSError("simulated crash before publish")

    # filesystem.py calls os.link through the os module
    monkeypatch.setattr(os, "link", fail)
    return calls


def test_put_bytes_interrupted_before_publish(
    store: FilesystemBlobStore, tmp_path: Path, crash_on_publish: list[tuple[str, str]]
) -> None:
    digest = compute_digest(b"never visible")
    with pytest.raises(OSError, match="simulated crash"):
        run(store.put_bytes(digest, b"never visible"))
    assert len(crash_on_publish) == 1
    # the bytes had been written to a temporary file under uploads/ first
    assert crash_on_publish[0][0].startswith(str(tmp_path / "uploads"))
    with pytest.raises(ObjectMissing):
        run(store.stat(digest))
    with pytest.raises(ObjectMissing):
        run(store.read_bytes(digest))
    assert digests(store) == set()
    assert files_under(tmp_path / "blobs") == []
    assert list((tmp_path / "uploads").iterdir()) == []


def test_commit_interrupted_before_publish_can_be_retried(
    store: FilesystemBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = new_upload(store)
    parts = [write(store, upload_id, b"never "), write(store, upload_id, b"visible")]
    digest = compute_digest(b"never visible")
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError("simulated")))
    with pytest.raises(OSError, match="simulated"):
        run(store.commit_parts(upload_id, parts, digest))
    with pytest.raises(ObjectMissing):
        run(store.stat(digest))
    assert files_under(tmp_path / "blobs") == []
    monkeypatch.setattr(os, "link", real_link)
    run(store.commit_parts(upload_id, parts, digest))
    assert run(store.read_bytes(digest)) == b"never visible"


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.ENOSPC, "ENOSPC"), (errno.EDQUOT, "EDQUOT"), (errno.EROFS, "EROFS")]
)
def test_a_full_or_read_only_disk_is_insufficient_storage(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InsufficientStorage) as info:
        run(store.put_bytes(compute_digest(b"no room"), b"no room"))
    assert info.value.detail["reason"] == reason
    upload_id = new_upload(store)
    part = write(store, upload_id, b"no room")  # written, not yet fsynced
    with pytest.raises(InsufficientStorage):
        run(store.commit_parts(upload_id, [part], compute_digest(b"no room")))


def test_leftovers_of_a_killed_process_are_invisible(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    # A process killed between writing and publishing leaves scratch files, never a blob.
    data = b"half-published"
    digest = compute_digest(data)
    scratch = tmp_path / "uploads" / "0b7e1c52-6a7f-4d2e-9c1b-1f0a9d3e5b71"
    scratch.mkdir()
    (scratch / "manifest").write_bytes(data)
    upload_id = new_upload(store)
    part = write(store, upload_id, data)
    reopened = FilesystemBlobStore(tmp_path)
    with pytest.raises(ObjectMissing):
        run(reopened.stat(digest))
    assert digests(reopened) == set()
    # the interrupted upload can still be finished by the new process
    run(reopened.commit_parts(upload_id, [part], digest))
    assert run(reopened.read_bytes(digest)) == data


def test_reopening_keeps_blobs(store: FilesystemBlobStore, tmp_path: Path) -> None:
    digest = put(store, b"persistent")
    reopened = FilesystemBlobStore(tmp_path)
    assert run(reopened.read_bytes(digest)) == b"persistent"
    assert digests(reopened) == {digest}


@pytest.mark.parametrize("upload_id", ["../../etc", "a/b", "", "..", "UPLOAD", "tmp-x"])
def test_malformed_upload_ids_never_reach_the_disk(
    store: FilesystemBlobStore, tmp_path: Path, upload_id: str
) -> None:
    with pytest.raises(ValueError, match="malformed upload id"):
        run(store.create_upload(upload_id))
    with pytest.raises(ValueError, match="malformed upload id"):
        run(store.delete_upload(upload_id))
    assert files_under(tmp_path) == []
