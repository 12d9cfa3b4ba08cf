"""``semreg gc`` removes bytes nothing refers to and abandoned uploads, and nothing else."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import make_image, random_bytes
from tests.registry_client import assert_error, push_blob, push_image
from tests.server import ServerProcess, semreg_command


def blob_file(registry, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return registry.data_dir / "blobs" / algorithm / hex_[:2] / hex_


def gc(registry, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
    if registry.database_url:
        env["SEMREG_DATABASE_URL"] = registry.database_url
    result = subprocess.run(
        [*semreg_command(), "gc", "--data", str(registry.data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def registry(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    """A server of this module's own: collecting with a TTL of 0 must not touch other tests'
    uploads (``client``, ``feed`` and ``repo`` of conftest.py use this one here)."""
    server = ServerProcess(tmp_path_factory.mktemp("gc"), database_factory()).start()
    yield server
    server.stop()


def test_gc_removes_only_unreferenced_bytes(registry, client, repo, feed):
    kept, dropped = make_image(2, seed="gc-kept"), make_image(2, seed="gc-dropped")
    push_image(client, repo, kept, "kept")
    push_image(client, repo, dropped, "dropped")
    # The kept image also lives in a second repository, mounted: deleting one link keeps it.
    shared_layer = next(iter(kept.blobs))
    other = f"{feed}/other"
    response = client.post(
        f"/v2/{other}/blobs/uploads/", params={"mount": shared_layer, "from": repo}
    )
    assert response.status_code == 201
    orphan = push_blob(client, f"{feed}/orphans", random_bytes(4096))
    client.delete(f"/v2/{feed}/orphans/blobs/{orphan}")
    assert client.delete(f"/v2/{repo}/manifests/{dropped.digest}").status_code == 202
    for digest in dropped.blobs:
        assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    upload = client.post(f"/v2/{repo}/blobs/uploads/")
    assert upload.status_code == 202

    before = {d: blob_file(registry, d).exists() for d in [orphan, dropped.digest, *dropped.blobs]}
    assert all(before.values())

    assert "would delete" in gc(registry, "--grace-minutes", "0", "--dry-run")
    assert blob_file(registry, orphan).exists()

    report = gc(registry, "--grace-minutes", "0", "--upload-ttl-hours", "0")
    assert report.startswith("deleted ")
    for digest in [orphan, dropped.digest, *dropped.blobs]:
        assert not blob_file(registry, digest).exists(), digest
    for digest in [kept.digest, *kept.blobs]:
        assert blob_file(registry, digest).exists(), digest
    pulled = client.get(f"/v2/{repo}/manifests/kept", headers={"Accept": "*/*"})
    assert pulled.content == kept.manifest
    for digest, data in kept.blobs.items():
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
    # The idle upload session is gone too.
    assert_error(client.get(upload.headers["Location"]), 404, "BLOB_UPLOAD_UNKNOWN")


def test_gc_keeps_young_bytes(registry, client, feed):
    orphan = push_blob(client, f"{feed}/young", random_bytes(2048))
    client.delete(f"/v2/{feed}/young/blobs/{orphan}")
    gc(registry)  # default grace: one hour
    assert blob_file(registry, orphan).exists()


def test_gc_removes_upload_bytes_no_session_owns(registry, client, repo):
    # A process stopped between writing an upload's folder and recording its session leaves
    # bytes nothing owns. gc removes them once idle for the upload TTL, and nothing else.
    uploads = registry.data_dir / "uploads"
    old = time.time() - 2 * 24 * 3600

    def orphan(upload_id: str, written: float) -> Path:
        folder = uploads / upload_id
        folder.mkdir(parents=True)
        (folder / f"part-{uuid.uuid4().hex}").write_bytes(b"half a layer")
        for path in (*folder.iterdir(), folder):
            os.utime(path, (written, written))
        return folder

    stale, young = orphan(str(uuid.uuid4()), old), orphan(str(uuid.uuid4()), time.time())
    # A live session whose bytes were last written long ago is still owned: kept.
    live = client.post(f"/v2/{repo}/blobs/uploads/")
    assert live.status_code == 202
    live_folder = uploads / live.headers["Docker-Upload-UUID"]
    os.utime(live_folder, (old, old))

    assert "would delete" in gc(registry, "--dry-run")
    assert stale.exists()

    gc(registry)  # default upload TTL: one day
    assert not stale.exists()
    assert young.exists()
    assert live_folder.exists()
    data = random_bytes(1000)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    finished = client.put(live.headers["Location"], params={"digest": digest}, content=data)
    assert finished.status_code == 201


def test_blobs_of_a_push_in_progress_survive_gc(registry, client, repo):
    # The layers are pushed (linked to the repository), the manifest not yet: gc with a grace of
    # zero must keep them, and the manifest push then succeeds.
    image = make_image(2, seed="mid-push")
    for data in image.blobs.values():
        push_blob(client, repo, data)
    gc(registry, "--grace-minutes", "0")
    for digest in image.blobs:
        assert blob_file(registry, digest).exists(), digest
    assert push_image(client, repo, image, "mid") == image.digest
    for digest, data in image.blobs.items():
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
