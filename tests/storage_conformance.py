"""The one conformance suite every ``BlobStore`` (semreg.storage.base) must pass.

A backend is tested by a module that defines a ``store`` fixture and star-imports this one:

    @pytest.fixture
    def store(tmp_path): return FilesystemBlobStore(tmp_path)

    from tests.storage_conformance import *  # noqa: F403

The store API is async; each test drives it with ``asyncio.run`` (no pytest plugin needed).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

from semreg.domain.digest import Digest, Hasher, compute_digest, new_hasher
from semreg.storage.base import BlobStore, DigestMismatch, ObjectMissing, UploadMissing

T = TypeVar("T")
MIB = 1024 * 1024


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def read_all(store: BlobStore, digest: Digest, start: int = 0, end: int | None = None) -> bytes:
    return run(_collect(store.read(digest, start, end)))


async def _chunks(parts: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def append(
    store: BlobStore, upload_id: str, offset: int, *parts: bytes, hasher: Hasher | None = None
) -> int:
    return run(store.append_upload(upload_id, offset, _chunks(parts), hasher))


def digests(store: BlobStore) -> set[Digest]:
    async def collect() -> set[Digest]:
        return {d async for d in store.iter_digests()}

    return run(collect())


def new_upload(store: BlobStore) -> str:
    upload_id = str(uuid.uuid4())
    run(store.create_upload(upload_id))
    return upload_id


def pattern(size: int, seed: bytes = b"seed") -> bytes:
    """``size`` deterministic bytes that differ at every position from other seeds'."""
    return hashlib.shake_256(seed).digest(size)


def put(store: BlobStore, data: bytes, algorithm: str = "sha256") -> Digest:
    digest = compute_digest(data, algorithm)
    run(store.put_bytes(digest, data))
    return digest


def assert_upload_gone(store: BlobStore, upload_id: str) -> None:
    with pytest.raises(UploadMissing):
        run(store.upload_size(upload_id))
    with pytest.raises(UploadMissing):
        append(store, upload_id, 0, b"x")


# --- blobs -------------------------------------------------------------------------------------


def test_put_then_read(store: BlobStore) -> None:
    data = b'{"schemaVersion":2}'
    digest = put(store, data)
    assert run(store.read_bytes(digest)) == data
    assert run(store.stat(digest)) == len(data)
    assert read_all(store, digest) == data
    assert digests(store) == {digest}


def test_empty_blob(store: BlobStore) -> None:
    digest = put(store, b"")
    assert run(store.stat(digest)) == 0
    assert run(store.read_bytes(digest)) == b""
    assert read_all(store, digest) == b""


def test_put_bytes_is_idempotent(store: BlobStore) -> None:
    data = pattern(100)
    digest = put(store, data)
    run(store.put_bytes(digest, data))
    assert run(store.read_bytes(digest)) == data
    assert digests(store) == {digest}


def test_put_bytes_with_the_wrong_digest(store: BlobStore) -> None:
    claimed = compute_digest(b"claimed")
    with pytest.raises(DigestMismatch) as info:
        run(store.put_bytes(claimed, b"actual"))
    assert info.value.expected == claimed
    assert info.value.actual == compute_digest(b"actual")
    for digest in (claimed, compute_digest(b"actual")):
        with pytest.raises(ObjectMissing):
            run(store.stat(digest))
    assert digests(store) == set()


def test_put_bytes_sha512(store: BlobStore) -> None:
    data = pattern(300, b"512")
    digest = put(store, data, "sha512")
    assert digest.algorithm == "sha512"
    assert run(store.read_bytes(digest)) == data
    assert run(store.stat(digest)) == 300
    # the same bytes under sha256 are another blob
    with pytest.raises(ObjectMissing):
        run(store.stat(compute_digest(data)))
    with pytest.raises(DigestMismatch):
        run(store.put_bytes(Digest("sha512", compute_digest(data).hex * 2), data))


def test_missing_blob(store: BlobStore) -> None:
    put(store, b"other")
    missing = compute_digest(b"missing")
    with pytest.raises(ObjectMissing):
        run(store.stat(missing))
    with pytest.raises(ObjectMissing):
        run(store.read_bytes(missing))
    with pytest.raises(ObjectMissing):
        read_all(store, missing)
    with pytest.raises(ObjectMissing):
        read_all(store, missing, 1, 2)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 1000),
        (0, 1),
        (1, None),
        (10, 20),
        (999, None),
        (999, 1000),
        (500, 500),
        (0, 0),
        (1000, None),
        (990, 5000),
    ],
)
def test_read_range(store: BlobStore, start: int, end: int | None) -> None:
    data = pattern(1000)
    digest = put(store, data)
    assert read_all(store, digest, start, end) == data[start:end]


def test_read_range_of_a_large_blob(store: BlobStore) -> None:
    data = pattern(2 * MIB + 12345, b"large")
    digest = put(store, data)
    assert read_all(store, digest) == data
    start, end = MIB - 7, 2 * MIB + 100
    assert read_all(store, digest, start, end) == data[start:end]
    assert read_all(store, digest, 2 * MIB) == data[2 * MIB :]
    assert run(store.stat(digest)) == len(data)


def test_delete(store: BlobStore) -> None:
    keep = put(store, b"keep")
    gone = put(store, b"gone")
    assert digests(store) == {keep, gone}
    run(store.delete(gone))
    with pytest.raises(ObjectMissing):
        run(store.stat(gone))
    with pytest.raises(ObjectMissing):
        run(store.read_bytes(gone))
    assert digests(store) == {keep}
    assert run(store.read_bytes(keep)) == b"keep"
    # deleting again, or a blob never stored, is not an error
    run(store.delete(gone))
    run(store.delete(compute_digest(b"never")))
    # and the bytes can be stored again
    assert put(store, b"gone") == gone
    assert run(store.read_bytes(gone)) == b"gone"


def test_iter_digests(store: BlobStore) -> None:
    assert digests(store) == set()
    stored = {put(store, pattern(10, bytes([i]))) for i in range(20)}
    stored.add(put(store, b"sha512", "sha512"))
    assert digests(store) == stored


def test_iter_digests_ignores_uploads(store: BlobStore) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"in progress")
    assert digests(store) == set()


# --- uploads -----------------------------------------------------------------------------------


def test_create_upload_is_empty(store: BlobStore) -> None:
    upload_id = new_upload(store)
    assert run(store.upload_size(upload_id)) == 0


def test_unknown_upload(store: BlobStore) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(UploadMissing):
        run(store.upload_size(unknown))
    with pytest.raises(UploadMissing):
        append(store, unknown, 0, b"data")
    with pytest.raises(UploadMissing):
        run(store.commit_upload(unknown, compute_digest(b""), 0))


def test_append_at_zero_and_at_the_end(store: BlobStore) -> None:
    upload_id = new_upload(store)
    assert append(store, upload_id, 0, b"hello ") == 6
    assert run(store.upload_size(upload_id)) == 6
    assert append(store, upload_id, 6, b"wor", b"ld") == 11
    assert run(store.upload_size(upload_id)) == 11
    digest = compute_digest(b"hello world")
    run(store.commit_upload(upload_id, digest, 11))
    assert run(store.read_bytes(digest)) == b"hello world"


def test_append_nothing(store: BlobStore) -> None:
    upload_id = new_upload(store)
    assert append(store, upload_id, 0) == 0
    assert append(store, upload_id, 0, b"abc") == 3
    assert append(store, upload_id, 3) == 3
    assert append(store, upload_id, 3, b"") == 3
    assert run(store.upload_size(upload_id)) == 3


def test_append_below_the_size_drops_the_tail(store: BlobStore) -> None:
    # A chunk that failed half-way left bytes past the committed offset; the retry overwrites them.
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"0123456789")
    assert append(store, upload_id, 4, b"ab") == 6
    assert run(store.upload_size(upload_id)) == 6
    assert append(store, upload_id, 0) == 0
    assert run(store.upload_size(upload_id)) == 0
    append(store, upload_id, 0, b"xyz")
    assert append(store, upload_id, 3, b"!") == 4
    digest = compute_digest(b"xyz!")
    run(store.commit_upload(upload_id, digest, 4))
    assert run(store.read_bytes(digest)) == b"xyz!"


def test_append_beyond_the_size(store: BlobStore) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"abc")
    with pytest.raises(UploadMissing):
        append(store, upload_id, 4, b"d")
    # the upload is unharmed
    assert run(store.upload_size(upload_id)) == 3
    assert append(store, upload_id, 3, b"d") == 4
    run(store.commit_upload(upload_id, compute_digest(b"abcd"), 4))


def test_append_many_chunks_of_several_mebibytes(store: BlobStore) -> None:
    data = pattern(3 * MIB + 333, b"chunks")
    parts = tuple(data[i : i + 64 * 1024 + 1] for i in range(0, len(data), 64 * 1024 + 1))
    upload_id = new_upload(store)
    hasher = new_hasher()
    assert append(store, upload_id, 0, *parts[:20], hasher=hasher) == sum(map(len, parts[:20]))
    offset = run(store.upload_size(upload_id))
    assert append(store, upload_id, offset, *parts[20:], hasher=hasher) == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    digest = compute_digest(data)
    run(store.commit_upload(upload_id, digest, len(data), hasher))
    assert read_all(store, digest) == data
    assert run(store.stat(digest)) == len(data)


def test_append_feeds_the_hasher(store: BlobStore) -> None:
    upload_id = new_upload(store)
    hasher = new_hasher()
    append(store, upload_id, 0, b"a", b"b", hasher=hasher)
    append(store, upload_id, 2, b"c", hasher=hasher)
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_commit_with_a_running_hasher(store: BlobStore) -> None:
    data = pattern(5000, b"hasher")
    upload_id = new_upload(store)
    hasher = new_hasher()
    append(store, upload_id, 0, data[:1234], hasher=hasher)
    append(store, upload_id, 1234, data[1234:], hasher=hasher)
    digest = compute_digest(data)
    run(store.commit_upload(upload_id, digest, len(data), hasher))
    assert run(store.read_bytes(digest)) == data
    assert digests(store) == {digest}
    assert_upload_gone(store, upload_id)


def test_commit_without_a_hasher(store: BlobStore) -> None:
    # Another worker appended the chunks: the store re-hashes the bytes it holds.
    data = pattern(5000, b"rehash")
    upload_id = new_upload(store)
    append(store, upload_id, 0, data[:10])
    append(store, upload_id, 10, data[10:])
    digest = compute_digest(data)
    run(store.commit_upload(upload_id, digest, len(data)))
    assert run(store.read_bytes(digest)) == data
    assert run(store.stat(digest)) == len(data)
    assert_upload_gone(store, upload_id)


def test_commit_an_empty_upload(store: BlobStore) -> None:
    upload_id = new_upload(store)
    digest = compute_digest(b"")
    run(store.commit_upload(upload_id, digest, 0))
    assert run(store.stat(digest)) == 0
    assert_upload_gone(store, upload_id)


@pytest.mark.parametrize("with_hasher", [False, True])
def test_commit_with_the_wrong_digest(store: BlobStore, with_hasher: bool) -> None:
    upload_id = new_upload(store)
    hasher = new_hasher() if with_hasher else None
    append(store, upload_id, 0, b"actual bytes", hasher=hasher)
    claimed = compute_digest(b"other bytes")
    with pytest.raises(DigestMismatch) as info:
        run(store.commit_upload(upload_id, claimed, 12, hasher))
    assert info.value.expected == claimed
    assert info.value.actual == compute_digest(b"actual bytes")
    for digest in (claimed, compute_digest(b"actual bytes")):
        with pytest.raises(ObjectMissing):
            run(store.stat(digest))
    assert digests(store) == set()
    assert_upload_gone(store, upload_id)


def test_commit_a_blob_that_already_exists(store: BlobStore) -> None:
    data = pattern(777, b"exists")
    digest = put(store, data)
    upload_id = new_upload(store)
    append(store, upload_id, 0, data)
    run(store.commit_upload(upload_id, digest, len(data)))
    assert run(store.read_bytes(digest)) == data
    assert digests(store) == {digest}
    assert_upload_gone(store, upload_id)
    # and once more through a second upload, with a hasher
    upload_id = new_upload(store)
    hasher = new_hasher()
    append(store, upload_id, 0, data, hasher=hasher)
    run(store.commit_upload(upload_id, digest, len(data), hasher))
    assert run(store.read_bytes(digest)) == data


def test_commit_a_size_shorter_than_the_data(store: BlobStore) -> None:
    # The bytes of a chunk that failed after the last recorded size are not part of the blob.
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"complete", b"+partial tail")
    digest = compute_digest(b"complete")
    run(store.commit_upload(upload_id, digest, 8))
    assert run(store.read_bytes(digest)) == b"complete"
    assert run(store.stat(digest)) == 8
    assert read_all(store, digest) == b"complete"
    assert_upload_gone(store, upload_id)


def test_commit_a_size_longer_than_the_data(store: BlobStore) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"short")
    with pytest.raises(UploadMissing):
        run(store.commit_upload(upload_id, compute_digest(b"short"), 6))
    with pytest.raises(ObjectMissing):
        run(store.stat(compute_digest(b"short")))
    assert_upload_gone(store, upload_id)


def test_commit_sha512(store: BlobStore) -> None:
    data = pattern(4096, b"upload512")
    digest = compute_digest(data, "sha512")
    upload_id = new_upload(store)
    append(store, upload_id, 0, data)
    run(store.commit_upload(upload_id, digest, len(data)))
    assert run(store.read_bytes(digest)) == data
    upload_id = new_upload(store)
    hasher = new_hasher("sha512")
    append(store, upload_id, 0, data[:100], data[100:], hasher=hasher)
    run(store.commit_upload(upload_id, digest, len(data), hasher))
    assert digests(store) == {digest}


def test_upload_size_tracks_appends(store: BlobStore) -> None:
    upload_id = new_upload(store)
    sizes = []
    for i in range(5):
        append(store, upload_id, i * 3, b"abc")
        sizes.append(run(store.upload_size(upload_id)))
    assert sizes == [3, 6, 9, 12, 15]


def test_delete_upload_is_idempotent(store: BlobStore) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, 0, b"data")
    run(store.delete_upload(upload_id))
    assert_upload_gone(store, upload_id)
    run(store.delete_upload(upload_id))
    run(store.delete_upload(str(uuid.uuid4())))
    assert digests(store) == set()


def test_delete_an_empty_upload(store: BlobStore) -> None:
    upload_id = new_upload(store)
    run(store.delete_upload(upload_id))
    assert_upload_gone(store, upload_id)


def test_uploads_are_independent(store: BlobStore) -> None:
    first, second = new_upload(store), new_upload(store)
    assert first != second
    append(store, first, 0, b"first")
    append(store, second, 0, b"second!")
    assert run(store.upload_size(first)) == 5
    assert run(store.upload_size(second)) == 7
    run(store.delete_upload(first))
    assert run(store.upload_size(second)) == 7
    run(store.commit_upload(second, compute_digest(b"second!"), 7))
    assert run(store.read_bytes(compute_digest(b"second!"))) == b"second!"
    assert_upload_gone(store, first)


def test_modified_at_is_when_the_bytes_were_written(store: BlobStore) -> None:
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(seconds=2)
    data = pattern(100, b"mtime")
    digest = compute_digest(data)
    run(store.put_bytes(digest, data))
    written = run(store.modified_at(digest))
    assert before <= written <= datetime.now(UTC) + timedelta(seconds=2)
    assert written.tzinfo is not None
    run(store.delete(digest))
    with pytest.raises(ObjectMissing):
        run(store.modified_at(digest))


def uploads_listed(store: BlobStore) -> dict[str, Any]:
    async def collect() -> dict[str, Any]:
        return {upload_id: written async for upload_id, written in store.iter_uploads()}

    return run(collect())


def test_iter_uploads_lists_each_upload_with_its_last_write(store: BlobStore) -> None:
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(seconds=2)
    first, second = new_upload(store), new_upload(store)
    append(store, second, 0, b"some bytes")
    # A small blob stored directly leaves no upload behind.
    run(store.put_bytes(compute_digest(b"direct"), b"direct"))
    listed = uploads_listed(store)
    assert set(listed) == {first, second}
    for written in listed.values():
        assert before <= written <= datetime.now(UTC) + timedelta(seconds=2)
        assert written.tzinfo is not None
    run(store.delete_upload(first))
    run(store.commit_upload(second, compute_digest(b"some bytes"), 10))
    assert uploads_listed(store) == {}
