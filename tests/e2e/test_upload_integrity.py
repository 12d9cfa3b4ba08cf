"""Uploads keep their bytes honest: racing writers, crashes, full and read-only disks.

- Of two writers on one upload, the one recorded first wins; the other writes only into a part of
  its own and fails; published bytes are never replaced, so no feed can change another's layer.
- A writer that lost its upload stops at its next checkpoint.
- Progress is recorded while a chunk streams: after a SIGKILL the client resumes at once from
  the durable bytes.
- A full or read-only disk answers 507 naming the cause, leaves the upload as it was, and the
  same request succeeds once there is room again.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_uploads import (
    RawRequest,
    assert_blob,
    assert_created,
    assert_session,
    content,
    create_feed,
    patch,
    start_upload,
)
from tests.factories import digest_of
from tests.registry_client import error_code, push_blob
from tests.server import ServerProcess

MIB = 1024 * 1024


def blob_file(server: ServerProcess, digest: str, root: Path | None = None) -> Path:
    algorithm, hex_ = digest.split(":")
    return (root or server.data_dir) / "blobs" / algorithm / hex_[:2] / hex_


# --- two writers, across feeds --------------------------------------------------------------------


def test_a_displaced_writer_cannot_change_another_feeds_layer(registry, client):
    # A public layer, pushed into one feed by its owner.
    public, attacker_feed = create_feed(client), create_feed(client)
    layer = content(300_000, "a public layer")
    digest = push_blob(client, f"{public}/base", layer)
    on_disk = blob_file(registry, digest)
    before = on_disk.stat()

    # Someone who may push only to their own feed races two writers on one of their uploads:
    # one streams the public layer's bytes (so its running hash is the layer's digest), the
    # other writes different bytes of the same length and completes first.
    location = start_upload(client, f"{attacker_feed}/evil")
    forged = content(300_000, "forged bytes")
    with RawRequest(client) as slow:
        slow.open("PATCH", location, len(layer), f"0-{len(layer) - 1}")
        slow.send(layer[:-1])
        assert_session(patch(client, location, forged, start=0), location, len(forged))
        slow.send(layer[-1:])
        status_line, headers = slow.read_head()
    # The displaced writer fails, and says where the upload stands.
    assert status_line.startswith("HTTP/1.1 416"), status_line
    assert headers["range"] == f"0-{len(forged) - 1}"
    assert headers["location"] == location

    # Finishing under the public layer's digest is refused: the upload holds the forged bytes.
    refused = client.put(location, params={"digest": digest})
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "DIGEST_INVALID"
    # The public layer is untouched, in its feed and on disk.
    assert_blob(client, f"{public}/base", layer)
    after = on_disk.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == digest.split(":")[1]


def test_finishing_the_winners_bytes_works(client, repo):
    location = start_upload(client, repo)
    mine, theirs = content(80_000, "mine"), content(80_000, "theirs")
    with RawRequest(client) as slow:
        slow.open("PATCH", location, len(mine), f"0-{len(mine) - 1}")
        slow.send(mine[:1000])
        assert_session(patch(client, location, theirs, start=0), location, len(theirs))
        slow.send(mine[1000:])
        status_line, _ = slow.read_head()
    assert status_line.startswith("HTTP/1.1 416"), status_line
    assert_created(
        client.put(location, params={"digest": digest_of(theirs)}), repo, digest_of(theirs)
    )
    assert_blob(client, repo, theirs)


# --- a server with small checkpoints ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_checkpoints(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("checkpoints"),
        database_factory(),
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_MIB="1",
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_SECONDS="0",
    ).start()
    yield server
    server.stop()


def http_for(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=60)


def session_size(http: httpx.Client, location: str) -> int:
    response = http.get(location)
    assert response.status_code == 204, response.text
    return int(response.headers["Range"].split("-")[1]) + 1


def wait_for_size(http: httpx.Client, location: str, at_least: int) -> int:
    deadline = time.monotonic() + 30
    while (size := session_size(http, location)) < at_least:
        assert time.monotonic() < deadline, f"the upload stayed at {size} bytes"
        time.sleep(0.02)
    return size


def test_a_writer_that_lost_the_upload_stops_at_its_next_checkpoint(small_checkpoints):
    with http_for(small_checkpoints) as http:
        repo = f"{create_feed(http)}/stops"
        location = start_upload(http, repo)
        data = content(6 * MIB, "long chunk")
        with RawRequest(http) as slow:
            slow.open("PATCH", location, len(data), f"0-{len(data) - 1}")
            slow.send(data[: 3 * MIB // 2])
            # Progress is recorded while the chunk streams in.
            recorded = wait_for_size(http, location, MIB)
            other = content(MIB, "takes over")
            response = patch(http, location, other, start=recorded)
            assert_session(response, location, recorded + MIB)
            # The first writer sends on; the server answers at its next checkpoint, long before
            # the announced end of the body.
            slow.sock.settimeout(20)
            sender = threading.Thread(target=_send_quietly, args=(slow, data[3 * MIB // 2 :]))
            sender.start()
            status_line, headers = slow.read_head()
            sender.join()
        assert status_line.startswith("HTTP/1.1 416"), status_line
        assert headers["range"] == f"0-{recorded + MIB - 1}"
        assert session_size(http, location) == recorded + MIB
        expected = data[:recorded] + other
        assert_created(
            http.put(location, params={"digest": digest_of(expected)}), repo, digest_of(expected)
        )
        assert_blob(http, repo, expected)


def _send_quietly(raw: RawRequest, data: bytes) -> None:
    """Send ``data`` in pieces until the server stops reading (it answered already)."""
    for start in range(0, len(data), 64 * 1024):
        try:
            raw.sock.sendall(data[start : start + 64 * 1024])
        except OSError:
            return


def test_an_upload_resumes_at_once_after_the_server_is_killed(database_factory, tmp_path):
    server = ServerProcess(
        tmp_path / "killed",
        database_factory(),
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_MIB="1",
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_SECONDS="0",
    ).start()
    try:
        with http_for(server) as http:
            repo = f"{create_feed(http)}/resumed"
            location = start_upload(http, repo)
            data = content(8 * MIB, "interrupted")
            with RawRequest(http) as raw:
                raw.open("PATCH", location, len(data), f"0-{len(data) - 1}")
                raw.send(data[: 5 * MIB])
                recorded = wait_for_size(http, location, 4 * MIB)
                assert server.process is not None
                server.process.kill()  # SIGKILL in the middle of the chunk
                server.process.wait()
                server.process = None
            server.start()
            # At once: no lease of the dead process to wait out, and the durable bytes are kept.
            durable = session_size(http, location)
            assert recorded <= durable <= 5 * MIB
            response = patch(http, location, data[durable:], start=durable)
            assert_session(response, location, len(data))
            assert_created(
                http.put(location, params={"digest": digest_of(data)}), repo, digest_of(data)
            )
            assert_blob(http, repo, data)
    finally:
        server.stop()


# --- a full or read-only disk -------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs) for the blob store."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` up; the file that does it (delete it to make room)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def assert_insufficient_storage(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 507, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "UNKNOWN"  # no OCI code names a full disk
    assert reason in error["message"]
    assert error["detail"]["reason"]
    assert "Traceback" not in response.text


def test_a_full_disk_is_507_and_every_request_can_be_retried(
    database_factory, tmp_path, small_disk
):
    server = ServerProcess(
        tmp_path / "full", database_factory(), SEMREG_STORAGE__BACKEND__PATH=str(small_disk)
    ).start()
    try:
        with http_for(server) as http:
            repo = f"{create_feed(http)}/full"
            data = content(MIB, "two parts")
            location = start_upload(http, repo)
            assert_session(patch(http, location, data[: MIB // 2], start=0), location, MIB // 2)
            assert_session(patch(http, location, data[MIB // 2 :], start=MIB // 2), location, MIB)
            filler = fill(small_disk)

            # Publishing two parts needs room for the copy: 507, and the upload is as it was.
            finish = http.put(location, params={"digest": digest_of(data)})
            assert_insufficient_storage(finish, "no space left on device")
            assert session_size(http, location) == MIB
            more = patch(http, location, b"x" * 200_000, start=MIB)
            assert_insufficient_storage(more, "no space left on device")
            monolithic = http.post(
                f"/v2/{repo}/blobs/uploads/",
                params={"digest": digest_of(b"y" * 300_000)},
                content=b"y" * 300_000,
            )
            assert_insufficient_storage(monolithic, "no space left on device")
            log = server.log()
            assert "Traceback" not in log

            filler.unlink()
            assert session_size(http, location) == MIB
            assert_created(
                http.put(location, params={"digest": digest_of(data)}), repo, digest_of(data)
            )
            assert_blob(http, repo, data)
    finally:
        server.stop()


def test_a_read_only_disk_is_507_and_recovers(database_factory, tmp_path, small_disk):
    server = ServerProcess(
        tmp_path / "ro", database_factory(), SEMREG_STORAGE__BACKEND__PATH=str(small_disk)
    ).start()
    try:
        with http_for(server) as http:
            repo = f"{create_feed(http)}/ro"
            data = content(100_000, "read-only")
            location = start_upload(http, repo)
            subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
            try:
                refused = patch(http, location, data, start=0)
                assert_insufficient_storage(refused, "read-only file system")
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
            assert_session(patch(http, location, data, start=0), location, len(data))
            assert_created(
                http.put(location, params={"digest": digest_of(data)}), repo, digest_of(data)
            )
            assert_blob(http, repo, data)
    finally:
        server.stop()


# --- two processes, one upload --------------------------------------------------------------


def test_an_upload_alternates_between_two_processes_and_survives_one_being_killed(
    database_factory, tmp_path
):
    # Two servers (two ports, so every request is known to reach the one it was sent to)
    # sharing one database and one data folder, as two replicas would.
    database = database_factory()
    first = ServerProcess(
        tmp_path / "shared",
        database,
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_MIB="1",
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_SECONDS="0",
    ).start()
    second = ServerProcess(
        tmp_path / "shared",
        database,
        admin_key=first.admin_key,
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_MIB="1",
        SEMREG_STORAGE__UPLOAD_CHECKPOINT_SECONDS="0",
    )
    second.log_path = tmp_path / "second.log"
    second.start()
    try:
        with http_for(first) as a, http_for(second) as b:
            repo = f"{create_feed(a)}/replicated"
            data = content(7 * MIB + 3, "two processes")
            location = start_upload(a, repo)
            cuts = [0, MIB, 2 * MIB + 1, 3 * MIB]
            for n, (start, end) in enumerate(itertools.pairwise(cuts)):
                http = (b, a)[n % 2]
                assert_session(patch(http, location, data[start:end], start=start), location, end)
                assert session_size((a, b)[n % 2], location) == end
            # A chunk streaming into the second process when it is killed...
            with RawRequest(b) as raw:
                rest = data[3 * MIB :]
                raw.open("PATCH", location, len(rest), f"{3 * MIB}-{len(data) - 1}")
                raw.send(rest[: 2 * MIB + 100])
                recorded = wait_for_size(a, location, 4 * MIB)
                assert second.process is not None
                second.process.kill()
                second.process.wait()
                second.process = None
            # ...is continued on the first, at once, from what was durably received.
            durable = session_size(a, location)
            assert recorded <= durable <= 5 * MIB + 100
            assert_session(patch(a, location, data[durable:], start=durable), location, len(data))
            response = a.put(location, params={"digest": digest_of(data)})
            assert_created(response, repo, digest_of(data))
            assert_blob(a, repo, data)
    finally:
        second.stop()
        first.stop()
