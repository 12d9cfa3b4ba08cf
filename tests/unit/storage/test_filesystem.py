"""The storage conformance suite on the filesystem store, plus its on-disk guarantees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semreg.domain.digest import compute_digest
from semreg.storage.base import DigestMismatch, ObjectMissing, UploadMissing
from semreg.storage.filesystem import FilesystemBlobStore
from tests.storage_conformance import *  # noqa: F403
from tests.storage_conformance import append, digests, new_upload, pattern, put, run


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


def test_committed_upload_lands_in_the_layout(store: FilesystemBlobStore, tmp_path: Path) -> None:
    data = pattern(3000, b"fs")
    upload_id = new_upload(store)
    assert (tmp_path / "uploads" / upload_id / "data").is_file()
    append(store, upload_id, 0, data)
    digest = compute_digest(data)
    run(store.commit_upload(upload_id, digest, len(data)))
    path = tmp_path / "blobs" / "sha256" / digest.hex[:2] / digest.hex
    assert path.read_bytes() == data
    assert list((tmp_path / "uploads").iterdir()) == []


def test_no_temporary_files_remain(store: FilesystemBlobStore, tmp_path: Path) -> None:
    put(store, b"small")
    put(store, b"small")
    with pytest.raises(DigestMismatch):
        run(store.put_bytes(compute_digest(b"x"), b"y"))
    ok = new_upload(store)
    append(store, ok, 0, b"ok", b" tail")
    run(store.commit_upload(ok, compute_digest(b"ok"), 2))
    bad = new_upload(store)
    append(store, bad, 0, b"bad")
    with pytest.raises(DigestMismatch):
        run(store.commit_upload(bad, compute_digest(b"good"), 3))
    short = new_upload(store)
    with pytest.raises(UploadMissing):
        run(store.commit_upload(short, compute_digest(b""), 1))
    deleted = new_upload(store)
    append(store, deleted, 0, b"deleted")
    run(store.delete_upload(deleted))
    assert list((tmp_path / "uploads").iterdir()) == []


@pytest.fixture
def crash_on_publish(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Make ``os.replace`` (the publishing step) fail, as a crash or full disk would."""
    calls: list[tuple[str, str]] = []

    def fail(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        calls.append((str(source), str(target)))
        raise OSError("simulated crash before publish")

    # filesystem.py calls os.replace through the os module
    monkeypatch.setattr(os, "replace", fail)
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


def test_commit_interrupted_before_publish(
    store: FilesystemBlobStore, tmp_path: Path, crash_on_publish: list[tuple[str, str]]
) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"never visible")
    digest = compute_digest(b"never visible")
    with pytest.raises(OSError, match="simulated crash"):
        run(store.commit_upload(upload_id, digest, 13))
    assert len(crash_on_publish) == 1
    with pytest.raises(ObjectMissing):
        run(store.stat(digest))
    assert digests(store) == set()
    assert files_under(tmp_path / "blobs") == []


def test_leftovers_of_a_killed_process_are_invisible(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    # A process killed between writing and publishing leaves scratch files, never a blob.
    data = b"half-published"
    digest = compute_digest(data)
    (tmp_path / "uploads" / "tmp-0123456789abcdef").write_bytes(data)
    upload_id = new_upload(store)
    append(store, upload_id, 0, data)
    reopened = FilesystemBlobStore(tmp_path)
    with pytest.raises(ObjectMissing):
        run(reopened.stat(digest))
    assert digests(reopened) == set()
    # the interrupted upload can still be finished by the new process
    assert run(reopened.upload_size(upload_id)) == len(data)
    run(reopened.commit_upload(upload_id, digest, len(data)))
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
