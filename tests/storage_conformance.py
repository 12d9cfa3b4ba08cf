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
from semreg.storage.base import (
    BlobStore,
    DigestMismatch,
    ObjectMissing,
    UploadMissing,
    UploadPart,
)

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


def write(
    store: BlobStore,
    upload_id: str,
    *chunks: bytes,
    name: str | None = None,
    hasher: Hasher | None = None,
) -> UploadPart:
    """Write ``chunks`` as a new part; the finished part as the service would record it."""
    name = name or uuid.uuid4().hex
    size = run(store.write_part(upload_id, name, _chunks(chunks), hasher))
    return UploadPart(name, size)


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
        write(store, upload_id, b"x")
    assert upload_id not in uploads_listed(store)


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
    write(store, upload_id, b"in progress")
    assert digests(store) == set()


# --- uploads -----------------------------------------------------------------------------------


def commit(
    store: BlobStore,
    upload_id: str,
    parts: list[UploadPart],
    data: bytes,
    hasher: Hasher | None = None,
) -> Digest:
    """Commit ``parts``, which hold ``data``, under its digest."""
    digest = compute_digest(data)
    run(store.commit_parts(upload_id, parts, digest, hasher))
    return digest


def write_chunked(store: BlobStore, upload_id: str, data: bytes, **kwargs: Any) -> UploadPart:
    return write(
        store, upload_id, *[data[i : i + 70_000] for i in range(0, len(data), 70_000)], **kwargs
    )


def test_unknown_upload(store: BlobStore) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(UploadMissing):
        write(store, unknown, b"data")
    with pytest.raises(UploadMissing):
        run(store.commit_parts(unknown, [UploadPart(uuid.uuid4().hex, 0)], compute_digest(b"")))


def test_write_part_returns_its_size_and_feeds_the_hasher(store: BlobStore) -> None:
    upload_id = new_upload(store)
    hasher = new_hasher()
    assert write(store, upload_id, b"a", b"bc", b"", hasher=hasher).size == 3
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert write(store, upload_id).size == 0


def test_a_part_name_is_used_once(store: BlobStore) -> None:
    upload_id = new_upload(store)
    name = uuid.uuid4().hex
    write(store, upload_id, b"first", name=name)
    with pytest.raises(UploadMissing):
        write(store, upload_id, b"second", name=name)
    parts = [UploadPart(name, 5)]
    assert run(store.commit_parts(upload_id, parts, compute_digest(b"first"))) is None
    assert run(store.read_bytes(compute_digest(b"first"))) == b"first"


def test_checkpoints_report_durable_sizes_in_order(store: BlobStore) -> None:
    data = pattern(5 * MIB + 17, b"checkpoints")
    upload_id = new_upload(store)
    seen: list[int] = []

    async def checkpoint(size: int) -> None:
        seen.append(size)

    chunks = tuple(data[i : i + 300_000] for i in range(0, len(data), 300_000))
    size = run(store.write_part(upload_id, "a" * 32, _chunks(chunks), None, checkpoint, 2 * MIB))
    assert size == len(data)
    assert seen == sorted(seen)
    assert len(seen) == 2
    assert all(2 * MIB <= s <= len(data) for s in seen)
    # A checkpoint's bytes are the data's first bytes: committing that prefix gives them back.
    digest = compute_digest(data[: seen[0]])
    run(store.commit_parts(upload_id, [UploadPart("a" * 32, seen[0], closed=False)], digest))
    assert read_all(store, digest) == data[: seen[0]]


def test_checkpoints_wait_for_their_interval(store: BlobStore) -> None:
    upload_id = new_upload(store)
    seen: list[int] = []

    async def checkpoint(size: int) -> None:
        seen.append(size)

    chunks = tuple(pattern(MIB, bytes([i])) for i in range(6))
    size = run(store.write_part(upload_id, "c" * 32, _chunks(chunks), None, checkpoint, MIB, 3600))
    assert size == 6 * MIB
    assert seen == []  # a fast write is not held up by an fsync per MiB


def test_a_failing_checkpoint_stops_the_write(store: BlobStore) -> None:
    upload_id = new_upload(store)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(10):
            sent.append(i)
            yield pattern(MIB, bytes([i]))

    async def checkpoint(size: int) -> None:
        raise LookupError("lost the race")

    with pytest.raises(LookupError):
        run(store.write_part(upload_id, "b" * 32, chunks(), None, checkpoint, MIB))
    assert len(sent) < 10


def test_commit_one_finished_part(store: BlobStore) -> None:
    data = pattern(5000, b"one part")
    upload_id = new_upload(store)
    part = write_chunked(store, upload_id, data)
    digest = commit(store, upload_id, [part], data)
    assert run(store.read_bytes(digest)) == data
    assert run(store.stat(digest)) == len(data)
    assert digests(store) == {digest}


def test_commit_with_a_hasher_that_saw_the_bytes(store: BlobStore) -> None:
    data = pattern(3 * MIB + 333, b"hasher")
    upload_id = new_upload(store)
    hasher = new_hasher()
    first = write_chunked(store, upload_id, data[:MIB], hasher=hasher)
    second = write_chunked(store, upload_id, data[MIB:], hasher=hasher)
    digest = commit(store, upload_id, [first, second], data, hasher)
    assert read_all(store, digest) == data


def test_commit_several_parts_counts_only_their_recorded_bytes(store: BlobStore) -> None:
    upload_id = new_upload(store)
    first = write(store, upload_id, b"complete+tail that was never recorded")
    second = write(store, upload_id, b", second")
    parts = [UploadPart(first.name, 8, closed=False), second]
    digest = compute_digest(b"complete, second")
    run(store.commit_parts(upload_id, parts, digest))
    assert run(store.read_bytes(digest)) == b"complete, second"


def test_commit_an_unfinished_part_publishes_its_recorded_prefix(store: BlobStore) -> None:
    upload_id = new_upload(store)
    part = write(store, upload_id, b"durable|later")
    digest = compute_digest(b"durable")
    run(store.commit_parts(upload_id, [UploadPart(part.name, 7, closed=False)], digest))
    assert run(store.read_bytes(digest)) == b"durable"
    assert run(store.stat(digest)) == 7


def test_commit_an_empty_upload(store: BlobStore) -> None:
    upload_id = new_upload(store)
    digest = compute_digest(b"")
    run(store.commit_parts(upload_id, [], digest))
    assert run(store.stat(digest)) == 0
    run(store.commit_parts(upload_id, [write(store, upload_id)], digest))
    assert run(store.read_bytes(digest)) == b""


@pytest.mark.parametrize("with_hasher", [False, True])
def test_commit_with_the_wrong_digest_publishes_nothing(
    store: BlobStore, with_hasher: bool
) -> None:
    upload_id = new_upload(store)
    hasher = new_hasher() if with_hasher else None
    part = write(store, upload_id, b"actual bytes", hasher=hasher)
    claimed = compute_digest(b"other bytes")
    with pytest.raises(DigestMismatch) as info:
        run(store.commit_parts(upload_id, [part], claimed, hasher))
    assert info.value.expected == claimed
    assert info.value.actual == compute_digest(b"actual bytes")
    assert digests(store) == set()
    # The upload is still there: the right digest commits it.
    run(store.commit_parts(upload_id, [part], compute_digest(b"actual bytes")))
    assert run(store.read_bytes(compute_digest(b"actual bytes"))) == b"actual bytes"


def test_commit_a_part_shorter_than_recorded(store: BlobStore) -> None:
    upload_id = new_upload(store)
    part = write(store, upload_id, b"short")
    for parts in ([UploadPart(part.name, 6)], [UploadPart(part.name, 6, closed=False)]):
        with pytest.raises(UploadMissing):
            run(store.commit_parts(upload_id, parts, compute_digest(b"short!")))
    with pytest.raises(UploadMissing):
        run(store.commit_parts(upload_id, [UploadPart(uuid.uuid4().hex, 1)], compute_digest(b"s")))
    assert digests(store) == set()


def test_commit_a_blob_that_already_exists_keeps_it(store: BlobStore) -> None:
    data = pattern(777, b"exists")
    digest = put(store, data)
    for hasher in (None, new_hasher()):
        upload_id = new_upload(store)
        part = write(store, upload_id, data, hasher=hasher)
        run(store.commit_parts(upload_id, [part], digest, hasher))
        assert run(store.read_bytes(digest)) == data
    assert digests(store) == {digest}


def test_commit_leaves_the_upload_to_be_deleted_after_the_metadata(store: BlobStore) -> None:
    # Committing again after the blob was collected meanwhile publishes it again.
    upload_id = new_upload(store)
    part = write(store, upload_id, b"publish twice")
    digest = commit(store, upload_id, [part], b"publish twice")
    run(store.delete(digest))
    assert commit(store, upload_id, [part], b"publish twice") == digest
    assert run(store.read_bytes(digest)) == b"publish twice"
    run(store.delete_upload(upload_id))
    assert_upload_gone(store, upload_id)
    assert run(store.read_bytes(digest)) == b"publish twice"


def test_commit_sha512(store: BlobStore) -> None:
    data = pattern(4096, b"upload512")
    digest = compute_digest(data, "sha512")
    upload_id = new_upload(store)
    part = write(store, upload_id, data)
    run(store.commit_parts(upload_id, [part], digest))
    assert run(store.read_bytes(digest)) == data
    upload_id = new_upload(store)
    hasher = new_hasher("sha512")
    parts = [write(store, upload_id, data[:100], hasher=hasher)]
    parts.append(write(store, upload_id, data[100:], hasher=hasher))
    run(store.commit_parts(upload_id, parts, digest, hasher))
    assert digests(store) == {digest}


def test_delete_part(store: BlobStore) -> None:
    upload_id = new_upload(store)
    part = write(store, upload_id, b"dropped")
    run(store.delete_part(upload_id, part.name))
    run(store.delete_part(upload_id, part.name))
    with pytest.raises(UploadMissing):
        run(store.commit_parts(upload_id, [part], compute_digest(b"dropped")))


def test_delete_upload_is_idempotent(store: BlobStore) -> None:
    upload_id = new_upload(store)
    write(store, upload_id, b"data")
    run(store.delete_upload(upload_id))
    assert_upload_gone(store, upload_id)
    run(store.delete_upload(upload_id))
    run(store.delete_upload(str(uuid.uuid4())))
    assert digests(store) == set()


def test_uploads_are_independent(store: BlobStore) -> None:
    first, second = new_upload(store), new_upload(store)
    assert first != second
    write(store, first, b"first")
    part = write(store, second, b"second!")
    run(store.delete_upload(first))
    run(store.commit_parts(second, [part], compute_digest(b"second!")))
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
    part = write(store, second, b"some bytes")
    # A small blob stored directly leaves no upload behind.
    run(store.put_bytes(compute_digest(b"direct"), b"direct"))
    listed = uploads_listed(store)
    assert set(listed) == {first, second}
    for written in listed.values():
        assert before <= written <= datetime.now(UTC) + timedelta(seconds=2)
        assert written.tzinfo is not None
    run(store.delete_upload(first))
    run(store.commit_parts(second, [part], compute_digest(b"some bytes")))
    run(store.delete_upload(second))
    assert uploads_listed(store) == {}
