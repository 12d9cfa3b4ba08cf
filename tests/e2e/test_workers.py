"""Several worker processes share one database and data folder: any of them serves any request."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.factories import digest_of, make_image, random_bytes
from tests.registry_client import push_image, push_manifest
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def workers(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("workers"), database_factory(), args=("--workers", "2")
    ).start()
    yield server
    server.stop()


def fresh(server: ServerProcess) -> httpx.Client:
    # A new connection per request lets the kernel hand each one to either worker.
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=60)


def test_chunked_upload_spread_over_workers(workers):
    with fresh(workers) as client:
        assert (
            client.post("/api/management/feeds/create", json={"name": "spread"}).status_code == 201
        )
        location = client.post("/v2/spread/app/blobs/uploads/").headers["Location"]
    data = random_bytes(3 * 1024 * 1024)
    step = 256 * 1024
    for start in range(0, len(data), step):
        with fresh(workers) as client:
            chunk = data[start : start + step]
            headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}"}
            assert client.patch(location, content=chunk, headers=headers).status_code == 202
    with fresh(workers) as client:
        done = client.put(location, params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/spread/app/blobs/{digest_of(data)}").content == data


def test_versioned_pushes_across_workers_keep_virtual_tags_exact(workers):
    with fresh(workers) as client:
        body = {"name": "multi", "containerVersioning": True}
        assert client.post("/api/management/feeds/create", json=body).status_code == 201
        versions = [f"1.{minor}.{patch}" for minor in range(3) for patch in range(5)]
        images = {v: make_image(1, seed=f"workers-{v}") for v in versions}
        for image in images.values():
            push_image(client, "multi/app", image)

    def push(version: str) -> int:
        with fresh(workers) as own:
            return push_manifest(own, "multi/app", version, images[version]).status_code

    with ThreadPoolExecutor(max_workers=15) as pool:
        assert set(pool.map(push, versions)) == {201}
    with fresh(workers) as client:
        for tag, version in [
            ("latest", "1.2.4"),
            ("1", "1.2.4"),
            ("1.0", "1.0.4"),
            ("1.1", "1.1.4"),
        ]:
            found = client.head(f"/v2/multi/app/manifests/{tag}")
            assert found.headers["Docker-Content-Digest"] == images[version].digest
