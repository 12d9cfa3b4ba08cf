"""Upload sessions survive a server restart: the state is in the database, the bytes on disk."""

from __future__ import annotations

import hashlib

import httpx

from tests.conftest import unique
from tests.factories import digest_of
from tests.registry_client import error_code
from tests.server import ServerProcess

OCTETS = {"Content-Type": "application/octet-stream"}


def client_for(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=60)


def test_chunked_uploads_continue_after_a_restart(database_factory, tmp_path):
    data = hashlib.shake_256(b"restart").digest(3 * 1024 * 1024 + 17)
    other = hashlib.shake_256(b"restart-other").digest(200_000)
    split = 1024 * 1024 + 5
    data_dir = tmp_path / "data"
    database_url = database_factory()
    feed = unique("restart")
    name = f"{feed}/team/app"

    first = ServerProcess(data_dir, database_url).start()
    try:
        with client_for(first) as client:
            response = client.post(
                "/api/management/feeds/create", json={"name": feed, "feedType": "docker"}
            )
            assert response.status_code == 201, response.text
            locations = []
            for chunk in (data[:split], other):
                response = client.post(f"/v2/{name}/blobs/uploads/")
                assert response.status_code == 202, response.text
                location = response.headers["Location"]
                response = client.patch(
                    location,
                    content=chunk,
                    headers=OCTETS | {"Content-Range": f"0-{len(chunk) - 1}"},
                )
                assert response.status_code == 202, response.text
                assert response.headers["Range"] == f"0-{len(chunk) - 1}"
                locations.append(location)
    finally:
        first.stop()

    # A new process on another port: the relative Location still names the upload.
    second = ServerProcess(data_dir, database_url, admin_key=first.admin_key).start()
    try:
        with client_for(second) as client:
            location = locations[0]
            status = client.get(location)
            assert status.status_code == 204, status.text
            assert status.headers["Range"] == f"0-{split - 1}"
            assert status.headers["Location"] == location
            assert status.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]

            response = client.patch(
                location,
                content=data[split:],
                headers=OCTETS | {"Content-Range": f"{split}-{len(data) - 1}"},
            )
            assert response.status_code == 202, response.text
            assert response.headers["Location"] == location
            assert response.headers["Range"] == f"0-{len(data) - 1}"

            digest = digest_of(data)
            response = client.put(location, params={"digest": digest})
            assert response.status_code == 201, response.text
            assert response.headers["Location"] == f"/v2/{name}/blobs/{digest}"
            assert response.headers["Docker-Content-Digest"] == digest
            blob = client.get(f"/v2/{name}/blobs/{digest}")
            assert blob.status_code == 200
            assert blob.headers["Docker-Content-Digest"] == digest
            assert blob.content == data

            # The new process has no running hash of the other upload: it re-reads the bytes,
            # and still refuses a digest they do not have.
            wrong = digest_of(other + b"x")
            response = client.put(locations[1], params={"digest": wrong})
            assert response.status_code == 400, response.text
            assert error_code(response) == "DIGEST_INVALID"
            for absent in (wrong, digest_of(other)):
                blob = client.get(f"/v2/{name}/blobs/{absent}")
                assert blob.status_code == 404
                assert error_code(blob) == "BLOB_UNKNOWN"
    finally:
        second.stop()
