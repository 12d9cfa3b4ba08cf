"""Blob reads, ranges, deletes and cross-repository mounts end to end, over plain httpx."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.conftest import unique
from tests.factories import digest_of
from tests.registry_client import assert_error, error_code, push_blob

SIZE = 1000
DATA = hashlib.shake_256(b"blob-reads").digest(SIZE)


def create_feed(client: httpx.Client) -> str:
    name = unique("feed")
    response = client.post(
        "/api/management/feeds/create", json={"name": name, "feedType": "docker"}
    )
    assert response.status_code == 201, response.text
    return name


def assert_blob(client: httpx.Client, name: str, data: bytes) -> None:
    response = client.get(f"/v2/{name}/blobs/{digest_of(data)}")
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Content-Digest"] == digest_of(data)
    assert response.headers["Content-Length"] == str(len(data))
    assert response.content == data


def assert_blob_unknown(client: httpx.Client, name: str, digest: str) -> None:
    head = client.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 404
    assert head.content == b""
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "BLOB_UNKNOWN"


def assert_upload_started(response: httpx.Response, name: str) -> str:
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert location.startswith(f"/v2/{name}/blobs/uploads/")
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    return location


def assert_mounted(response: httpx.Response, name: str, digest: str) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/{name}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest


# --- GET and HEAD ---------------------------------------------------------------------------------


def test_get_and_head_blob(client, repo):
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == DATA

    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(SIZE)
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.content == b""


def test_zero_length_blob_reads(client, repo):
    digest = push_blob(client, repo, b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == b""
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"

    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=0-0"})
    assert_error(response, 416, "UNSUPPORTED")
    assert response.headers["Content-Range"] == "bytes */0"


def test_suffix_range_of_a_zero_length_blob(client, repo):
    # No byte can be sent: a server may ignore Range (RFC 9110 14.2) or answer 416; a 206 would
    # need "Content-Range: bytes <first>-<last>/0" with last >= first, which does not exist (14.4).
    digest = push_blob(client, repo, b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert response.status_code in (200, 416), response.headers
    if response.status_code == 200:
        assert "Content-Range" not in response.headers
        assert response.content == b""
    else:
        assert response.headers["Content-Range"] == "bytes */0"


RANGES = [
    ("bytes=0-0", 0, 1),
    ("bytes=0-999", 0, SIZE),
    ("bytes=10-19", 10, 20),
    ("bytes=999-999", 999, SIZE),
    ("bytes=990-", 990, SIZE),
    ("bytes=0-", 0, SIZE),
    ("bytes=-10", 990, SIZE),
    ("bytes=-1", 999, SIZE),
    ("bytes=-5000", 0, SIZE),  # a suffix longer than the blob is the whole blob
    ("bytes=900-5000", 900, SIZE),  # the end is clamped to the blob
]


@pytest.mark.parametrize(("header", "start", "end"), RANGES)
def test_range_request(client, repo, header, start, end):
    digest = push_blob(client, repo, DATA)
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert response.status_code == 206, (method, response.text)
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
        assert response.headers["Content-Length"] == str(end - start)
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.content == (DATA[start:end] if method == "GET" else b"")


@pytest.mark.parametrize(
    "header", ["bytes=1000-1000", "bytes=1000-", "bytes=5000-6000", "bytes=-0"]
)
def test_unsatisfiable_range(client, repo, header):
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_error(response, 416, "UNSUPPORTED")
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    head = client.head(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert head.status_code == 416
    assert head.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize(
    "header", ["bytes=abc", "bytes=-", "items=0-10", "0-10", "bytes=0-1,5-6", "bytes=1-2-3"]
)
def test_malformed_range_is_ignored(client, repo, header):
    digest = push_blob(client, repo, DATA)
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 200, response.text
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.content == DATA


# --- unknown and foreign blobs --------------------------------------------------------------------


def test_unknown_blob(client, feed, repo):
    push_blob(client, repo, DATA)
    unknown = digest_of(b"never pushed")
    assert_blob_unknown(client, repo, unknown)
    assert_blob_unknown(client, repo, digest_of(b"never pushed", "sha512"))
    response = client.delete(f"/v2/{repo}/blobs/{unknown}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "BLOB_UNKNOWN"

    # A repository nobody pushed to has no blobs either.
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/v2/{feed}/never/pushed/blobs/{digest_of(DATA)}")
        assert response.status_code == 404, response.text
        assert error_code(response) in {"BLOB_UNKNOWN", "NAME_UNKNOWN"}


def test_blob_of_another_repository_is_not_visible(client, feed, repo):
    digest = push_blob(client, repo, DATA)
    sibling = f"{feed}/team/sibling"
    push_blob(client, sibling, b"something else")
    assert_blob_unknown(client, sibling, digest)
    elsewhere = f"{create_feed(client)}/team/app"
    push_blob(client, elsewhere, b"something else")
    assert_blob_unknown(client, elsewhere, digest)
    response = client.delete(f"/v2/{sibling}/blobs/{digest}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "BLOB_UNKNOWN"
    assert_blob(client, repo, DATA)


def test_blob_in_an_unknown_feed(client):
    response = client.get(f"/v2/{unique('nofeed')}/team/app/blobs/{digest_of(DATA)}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "NAME_UNKNOWN"


# --- DELETE ---------------------------------------------------------------------------------------


def test_delete_blob(client, repo):
    digest = push_blob(client, repo, DATA)
    response = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202, response.text
    assert_blob_unknown(client, repo, digest)
    response = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "BLOB_UNKNOWN"

    # Pushing it again brings it back.
    push_blob(client, repo, DATA)
    assert_blob(client, repo, DATA)


def test_delete_in_one_repository_keeps_the_blob_in_others(client, feed, repo):
    other = f"{feed}/team/other"
    digest = push_blob(client, repo, DATA)
    push_blob(client, other, DATA)
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert_blob_unknown(client, repo, digest)
    assert_blob(client, other, DATA)


# --- cross-repository mount -----------------------------------------------------------------------


def mount(client: httpx.Client, name: str, digest: str, source: str | None) -> httpx.Response:
    params = {"mount": digest} if source is None else {"mount": digest, "from": source}
    return client.post(f"/v2/{name}/blobs/uploads/", params=params)


def test_mount_from_a_repository_of_the_same_feed(client, feed, repo):
    digest = push_blob(client, repo, DATA)
    target = f"{feed}/team/mounted"
    response = mount(client, target, digest, repo)
    assert_mounted(response, target, digest)
    assert response.request.headers["Content-Length"] == "0"  # no bytes sent
    assert_blob(client, target, DATA)

    # The two links are independent.
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert_blob(client, target, DATA)


def test_mount_from_another_feed(client, repo):
    digest = push_blob(client, repo, DATA)
    target = f"{create_feed(client)}/team/app"
    assert_mounted(mount(client, target, digest, repo), target, digest)
    assert_blob(client, target, DATA)


def test_mount_into_a_repository_that_has_the_blob(client, feed, repo):
    digest = push_blob(client, repo, DATA)
    target = f"{feed}/team/has-it"
    push_blob(client, target, DATA)
    assert_mounted(mount(client, target, digest, repo), target, digest)
    assert_blob(client, target, DATA)


def test_mount_of_a_blob_the_source_lacks_starts_an_upload(client, feed, repo):
    push_blob(client, repo, b"the source exists")
    target = f"{feed}/team/target"
    for source in (repo, f"{feed}/never/pushed", f"{unique('nofeed')}/team/app"):
        response = mount(client, target, digest_of(DATA), source)
        location = assert_upload_started(response, target)
        assert_blob_unknown(client, target, digest_of(DATA))

    # The fallback session is a real one.
    response = client.put(location, params={"digest": digest_of(DATA)}, content=DATA)
    assert response.status_code == 201, response.text
    assert_blob(client, target, DATA)


def test_mount_without_from_starts_an_upload(client, feed, repo):
    digest = push_blob(client, repo, DATA)
    target = f"{feed}/team/target"
    location = assert_upload_started(mount(client, target, digest, None), target)
    assert_blob_unknown(client, target, digest)
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"


def test_mount_with_a_malformed_digest(client, feed, repo):
    response = mount(client, f"{feed}/team/target", "sha256:nothex", repo)
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"


def test_mount_into_an_unknown_feed(client, repo):
    digest = push_blob(client, repo, DATA)
    response = mount(client, f"{unique('nofeed')}/team/app", digest, repo)
    assert response.status_code == 404, response.text
    assert error_code(response) == "NAME_UNKNOWN"
