"""Blob uploads end to end: monolithic, chunked and streamed pushes, their errors and races.

Plain httpx against the real server; a raw socket where a client must misbehave (a body cut short).
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import unique
from tests.factories import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, digest_of, random_bytes
from tests.registry_client import error_code, push_blob

OCTETS = {"Content-Type": "application/octet-stream"}


def content(size: int, seed: str = "blob") -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def upload_range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def start_upload(client: httpx.Client, name: str) -> str:
    """POST a new upload session; check the 202 and return its Location."""
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert location.startswith(f"/v2/{name}/blobs/uploads/")
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    return location


def assert_session(response: httpx.Response, location: str, size: int, status: int = 202) -> None:
    """An upload answer: same Location as the first one, Range up to ``size``, the upload id."""
    assert response.status_code == status, response.text
    assert response.headers["Location"] == location
    assert response.headers["Range"] == upload_range(size)
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]


def patch(
    client: httpx.Client, location: str, data: bytes, start: int | None = None
) -> httpx.Response:
    headers = dict(OCTETS)
    if start is not None:
        headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
    return client.patch(location, content=data, headers=headers)


def assert_blob(client: httpx.Client, name: str, data: bytes, digest: str | None = None) -> None:
    digest = digest or digest_of(data)
    head = client.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == data


def assert_blob_absent(client: httpx.Client, name: str, digest: str) -> None:
    assert client.head(f"/v2/{name}/blobs/{digest}").status_code == 404
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


def assert_created(response: httpx.Response, name: str, digest: str) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/{name}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest


def assert_upload_unknown(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


def clone(client: httpx.Client) -> httpx.Client:
    """Another client with the same server and credentials, for another thread."""
    return httpx.Client(
        base_url=client.base_url, headers=client.headers, auth=client.auth, timeout=60
    )


def credential_lines(client: httpx.Client) -> list[str]:
    """The credential headers ``client`` would send, for requests written by hand."""
    request = client.build_request("GET", "/v2/")
    if client.auth is not None:
        request = next(client.auth.sync_auth_flow(request))
    return [
        f"{key}: {value}"
        for key, value in request.headers.items()
        if key.lower() == "authorization" or key.lower().startswith("x-")
    ]


def create_feed(client: httpx.Client) -> str:
    name = unique("feed")
    response = client.post(
        "/api/management/feeds/create", json={"name": name, "feedType": "docker"}
    )
    assert response.status_code == 201, response.text
    return name


# --- the happy paths ------------------------------------------------------------------------------


def test_monolithic_post_with_digest(client, repo):
    data = content(5000)
    digest = digest_of(data)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTETS
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_monolithic_post_of_a_blob_already_there(client, repo):
    data = content(300, "again")
    digest = push_blob(client, repo, data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_post_then_put_with_body(client, repo):
    data = content(4096, "post-put")
    digest = digest_of(data)
    location = start_upload(client, repo)
    assert_session(client.get(location), location, 0, status=204)

    response = client.put(location, params={"digest": digest}, content=data, headers=OCTETS)
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)
    # The session ended with the upload.
    assert_upload_unknown(client.get(location))


def test_chunked_upload_with_content_range_and_streamed_chunk(client, repo):
    data = content(300_000, "chunked")
    first, second, third = data[:100_000], data[100_000:250_000], data[250_000:]
    location = start_upload(client, repo)

    assert_session(patch(client, location, first, start=0), location, 100_000)
    assert_session(client.get(location), location, 100_000, status=204)
    # A chunk without Content-Range is streamed onto the end of the upload.
    assert_session(patch(client, location, second), location, 250_000)
    assert_session(patch(client, location, third, start=250_000), location, len(data))
    assert_session(client.get(location), location, len(data), status=204)

    response = client.put(location, params={"digest": digest_of(data)})
    assert_created(response, repo, digest_of(data))
    assert_blob(client, repo, data)


def test_streamed_chunk_sent_with_chunked_transfer_encoding(client, repo):
    data = content(200_000, "streamed")
    location = start_upload(client, repo)

    def body() -> Iterator[bytes]:
        for offset in range(0, len(data), 30_000):
            yield data[offset : offset + 30_000]

    response = client.patch(location, content=body(), headers=OCTETS)
    assert "Content-Length" not in response.request.headers
    assert_session(response, location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


@pytest.mark.parametrize("with_range", [True, False], ids=["content-range", "no-content-range"])
def test_final_put_carries_the_last_chunk(client, repo, with_range):
    data = content(70_000, f"last-{with_range}")
    digest = digest_of(data)
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:50_000], start=0), location, 50_000)

    headers = dict(OCTETS)
    if with_range:
        headers["Content-Range"] = f"50000-{len(data) - 1}"
    response = client.put(
        location, params={"digest": digest}, content=data[50_000:], headers=headers
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


def test_zero_length_blob(client, repo):
    digest = digest_of(b"")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"")
    assert_created(response, repo, digest)
    assert_blob(client, repo, b"", digest)

    other = f"{repo}-chunked"
    location = start_upload(client, other)
    assert_created(client.put(location, params={"digest": digest}), other, digest)
    assert_blob(client, other, b"", digest)


def test_cancel_upload(client, repo):
    location = start_upload(client, repo)
    assert_session(patch(client, location, b"abc", start=0), location, 3)

    response = client.delete(location)
    assert response.status_code == 204, response.text
    assert_upload_unknown(client.get(location))
    assert_upload_unknown(patch(client, location, b"def"))
    assert_upload_unknown(client.put(location, params={"digest": digest_of(b"abc")}))
    assert_upload_unknown(client.delete(location))
    assert_blob_absent(client, repo, digest_of(b"abc"))


# --- chunk errors ---------------------------------------------------------------------------------


def test_out_of_order_chunk_is_416_and_the_upload_resumes(client, repo):
    data = content(3000, "order")
    location = start_upload(client, repo)

    # Before any byte: a chunk that does not start at 0.
    response = patch(client, location, data[1000:2000], start=1000)
    assert response.status_code == 416, response.text
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert response.headers["Range"] == "0-0"

    assert_session(patch(client, location, data[:1000], start=0), location, 1000)
    for start in (2000, 500, 0, 1001):  # a gap, an overlap, a replay, off by one
        response = patch(client, location, data[start : start + 100], start=start)
        assert response.status_code == 416, (start, response.text)
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
        assert response.headers["Range"] == "0-999"  # where to resume
        assert response.headers["Location"] == location

    assert_session(client.get(location), location, 1000, status=204)
    assert_session(patch(client, location, data[1000:], start=1000), location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def test_out_of_order_last_chunk_at_put(client, repo):
    data = content(3000, "order-put")
    digest = digest_of(data)
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:1000], start=0), location, 1000)

    response = client.put(
        location,
        params={"digest": digest},
        content=data[1500:],
        headers=OCTETS | {"Content-Range": f"1500-{len(data) - 1}"},
    )
    assert response.status_code == 416, response.text
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert response.headers["Range"] == "0-999"
    assert_blob_absent(client, repo, digest)

    response = client.put(
        location,
        params={"digest": digest},
        content=data[1000:],
        headers=OCTETS | {"Content-Range": f"1000-{len(data) - 1}"},
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


@pytest.mark.parametrize("delta", [-40, 40], ids=["body-shorter", "body-longer"])
def test_content_range_not_matching_the_body(client, repo, delta):
    data = content(3000, f"size-{delta}")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:1000], start=0), location, 1000)

    announced_end = 1000 + 1000 - 1 + delta
    response = client.patch(
        location,
        content=data[1000:2000],
        headers=OCTETS | {"Content-Range": f"1000-{announced_end}"},
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "SIZE_INVALID"
    # Nothing of the refused chunk was kept.
    assert_session(client.get(location), location, 1000, status=204)

    assert_session(patch(client, location, data[1000:2000], start=1000), location, 2000)
    assert_session(patch(client, location, data[2000:], start=2000), location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def test_final_chunk_not_matching_its_content_range(client, repo):
    data = content(3000, "size-put")
    digest = digest_of(data)
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:1000], start=0), location, 1000)

    response = client.put(
        location,
        params={"digest": digest},
        content=data[1000:2500],
        headers=OCTETS | {"Content-Range": f"1000-{len(data) - 1}"},
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "SIZE_INVALID"
    assert_blob_absent(client, repo, digest)
    assert_session(client.get(location), location, 1000, status=204)

    response = client.put(
        location,
        params={"digest": digest},
        content=data[1000:],
        headers=OCTETS | {"Content-Range": f"1000-{len(data) - 1}"},
    )
    assert_created(response, repo, digest)
    assert_blob(client, repo, data)


# --- digests --------------------------------------------------------------------------------------


def test_digest_mismatch_at_put(client, repo):
    data = content(2000, "mismatch")
    wrong = digest_of(b"something else")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data, start=0), location, len(data))

    response = client.put(location, params={"digest": wrong})
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert_blob_absent(client, repo, wrong)
    assert_blob_absent(client, repo, digest_of(data))
    # The server says it discarded the upload.
    assert_upload_unknown(client.get(location))


def test_digest_mismatch_at_monolithic_post(client, repo):
    data = content(2000, "mismatch-post")
    wrong = digest_of(b"not this")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, content=data)
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert_blob_absent(client, repo, wrong)
    assert_blob_absent(client, repo, digest_of(data))


def test_put_without_digest_is_refused_and_the_upload_survives(client, repo):
    data = content(1000, "no-digest")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data, start=0), location, len(data))

    for params in ({}, {"digest": ""}):
        response = client.put(location, params=params)
        assert response.status_code == 400, response.text
        assert error_code(response) == "DIGEST_INVALID"

    assert_session(client.get(location), location, len(data), status=204)
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


MALFORMED = [
    "sha256",
    "sha256:",
    "not a digest",
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "sha512:" + "0" * 64,
    ":" + "0" * 64,
]


@pytest.mark.parametrize("digest", MALFORMED)
def test_malformed_digest_is_400(client, repo, digest):
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"x")
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"

    location = start_upload(client, repo)
    response = client.put(location, params={"digest": digest}, content=b"x")
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.parametrize(
    "digest",
    ["md5:" + hashlib.md5(b"x").hexdigest(), "blake3:" + "ab" * 32, "sha384:" + "ab" * 48],
)
def test_unsupported_digest_algorithm(client, repo, digest):
    algorithm = digest.split(":", 1)[0]
    responses = [
        client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"x"),
        client.put(start_upload(client, repo), params={"digest": digest}, content=b"x"),
    ]
    for response in responses:
        assert response.status_code == 400, response.text
        assert error_code(response) == "DIGEST_INVALID"
        message = response.json()["errors"][0]["message"]
        assert "unsupported" in message
        assert algorithm in message
        assert "sha256" in message  # tells the client what works


def test_sha512_blobs_end_to_end(client, repo):
    config = canonical({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    layer = content(150_000, "sha512-layer")
    config_digest, layer_digest = digest_of(config, "sha512"), digest_of(layer, "sha512")

    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": config_digest}, content=config
    )
    assert_created(response, repo, config_digest)
    location = start_upload(client, repo)
    assert_session(patch(client, location, layer[:100_000], start=0), location, 100_000)
    assert_session(patch(client, location, layer[100_000:]), location, len(layer))
    assert_created(client.put(location, params={"digest": layer_digest}), repo, layer_digest)

    assert_blob(client, repo, config, config_digest)
    assert_blob(client, repo, layer, layer_digest)
    wrong = digest_of(layer + b"x", "sha512")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, content=layer)
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert_blob_absent(client, repo, wrong)
    ranged = client.get(f"/v2/{repo}/blobs/{layer_digest}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == layer[10:20]

    def manifest(layer_ref: str) -> bytes:
        return canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_ref, "size": len(layer)}],
            }
        )

    # The registry checks sha512 references like any other: an absent one is refused...
    absent = manifest(digest_of(b"never pushed", "sha512"))
    response = client.put(
        f"/v2/{repo}/manifests/{digest_of(absent)}",
        content=absent,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    # ...and a present one is accepted.
    body = manifest(layer_digest)
    response = client.put(
        f"/v2/{repo}/manifests/{digest_of(body)}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    fetched = client.get(
        f"/v2/{repo}/manifests/{digest_of(body)}", headers={"Accept": OCI_MANIFEST}
    )
    assert fetched.status_code == 200
    assert fetched.content == body


# --- unknown uploads and names --------------------------------------------------------------------


def test_unknown_upload_id(client, repo):
    push_blob(client, repo, b"makes the repository exist")
    for upload_id in (str(uuid.uuid4()), "not-an-upload-id"):
        location = f"/v2/{repo}/blobs/uploads/{upload_id}"
        assert_upload_unknown(client.get(location))
        assert_upload_unknown(patch(client, location, b"abc", start=0))
        assert_upload_unknown(patch(client, location, b"abc"))
        assert_upload_unknown(client.put(location, params={"digest": digest_of(b"abc")}))
        assert_upload_unknown(
            client.put(location, params={"digest": digest_of(b"abc")}, content=b"abc")
        )
        assert_upload_unknown(client.delete(location))


def test_upload_is_bound_to_its_repository(client, feed, repo):
    data = content(2000, "bound")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:1000], start=0), location, 1000)
    upload_id = location.rsplit("/", 1)[1]

    existing = f"{feed}/team/other"
    push_blob(client, existing, b"other repository")
    elsewhere = f"{create_feed(client)}/team/app"
    push_blob(client, elsewhere, b"another feed")
    for name in (existing, f"{feed}/never/pushed", elsewhere):
        foreign = f"/v2/{name}/blobs/uploads/{upload_id}"
        assert_upload_unknown(client.get(foreign))
        assert_upload_unknown(patch(client, foreign, data[1000:], start=1000))
        assert_upload_unknown(client.put(foreign, params={"digest": digest_of(data)}))
        assert_upload_unknown(client.delete(foreign))
        assert_blob_absent(client, name, digest_of(data))

    # Nothing done through the other names touched the upload.
    assert_session(client.get(location), location, 1000, status=204)
    assert_session(patch(client, location, data[1000:], start=1000), location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def test_upload_into_an_unknown_feed(client):
    name = f"{unique('nofeed')}/team/app"
    data = b"nowhere to go"
    responses = [
        client.post(f"/v2/{name}/blobs/uploads/"),
        client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest_of(data)}, content=data),
        client.get(f"/v2/{name}/blobs/uploads/{uuid.uuid4()}"),
        client.patch(f"/v2/{name}/blobs/uploads/{uuid.uuid4()}", content=data),
    ]
    for response in responses:
        assert response.status_code == 404, response.text
        assert error_code(response) == "NAME_UNKNOWN"


# --- interrupted requests -------------------------------------------------------------------------


class RawRequest:
    """A request written by hand on a socket, so a test can stop in the middle of its body."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.sock = socket.create_connection((client.base_url.host, client.base_url.port), 30)

    def __enter__(self) -> RawRequest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def open(
        self, method: str, target: str, announced: int, content_range: str | None = None
    ) -> None:
        """Send the head with ``Expect: 100-continue``; return once the server reads the body.

        The 100 Continue comes when the handler first reads the body, so the server has accepted
        the request (and, for a chunk, taken the upload) before the test goes on.
        """
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {self.client.base_url.netloc.decode()}",
            "Content-Type: application/octet-stream",
            f"Content-Length: {announced}",
            "Expect: 100-continue",
            *credential_lines(self.client),
        ]
        if content_range:
            lines.append(f"Content-Range: {content_range}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line, _ = self.read_head()
        assert status_line.startswith("HTTP/1.1 100"), status_line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_head(self) -> tuple[str, dict[str, str]]:
        """The status line and headers of the next response on the connection."""
        raw = b""
        while b"\r\n\r\n" not in raw:
            received = self.sock.recv(1)  # byte by byte: leave what follows the head unread
            assert received, "the server closed the connection"
            raw += received
        lines = raw.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines[1:]:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
        return lines[0], headers


def send_truncated(
    client: httpx.Client, method: str, target: str, body: bytes, announced: int
) -> None:
    """Announce ``announced`` bytes, send ``body`` (fewer), then drop the connection."""
    assert len(body) < announced
    with RawRequest(client) as raw:
        raw.open(method, target, announced)
        raw.send(body)


def resend_after_drop(
    client: httpx.Client, location: str, chunk: bytes, start: int
) -> httpx.Response:
    """Send a chunk again after a dropped request, which may hold the upload for a moment."""
    deadline = time.monotonic() + 10
    while True:
        # Nothing of the dropped chunk was committed, before or after the server noticed the drop.
        assert_session(client.get(location), location, start, status=204)
        response = patch(client, location, chunk, start=start)
        if response.status_code != 416 or time.monotonic() > deadline:
            return response
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
        time.sleep(0.05)


def test_truncated_chunk_is_not_committed(client, repo):
    data = content(4 * 1024 * 1024, "truncated")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:1000], start=0), location, 1000)

    # More than one write batch of the cut-short chunk reaches the server before the drop.
    rest = data[1000:]
    send_truncated(client, "PATCH", location, rest[: 2 * 1024 * 1024], len(rest))
    assert_session(resend_after_drop(client, location, rest, 1000), location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)


def test_dropped_chunk_is_not_logged_as_a_server_failure(registry, client, repo):
    # A client going away mid-body is routine (a cancelled push): no 500, no traceback in the log.
    data = content(100_000, "dropped")
    location = start_upload(client, repo)
    logged = len(registry.log())
    send_truncated(client, "PATCH", location, data[:50_000], len(data))
    assert_session(resend_after_drop(client, location, data, 0), location, len(data))
    assert_created(client.put(location, params={"digest": digest_of(data)}), repo, digest_of(data))
    assert_blob(client, repo, data)
    log = registry.log()[logged:]
    assert "Traceback" not in log, log[-3000:]
    assert '"level": "error"' not in log, log[-3000:]


def test_truncated_monolithic_post_leaves_no_blob(client, repo):
    data = content(3 * 1024 * 1024, "truncated-post")
    sent = data[: 2 * 1024 * 1024]
    # The digest of what actually arrives: a server that took the cut body as complete would
    # publish it under this digest.
    for digest in (digest_of(sent), digest_of(data)):
        target = f"/v2/{repo}/blobs/uploads/?digest={digest}"
        send_truncated(client, "POST", target, sent, len(data))
    for _ in range(10):
        assert_blob_absent(client, repo, digest_of(sent))
        assert_blob_absent(client, repo, digest_of(data))
        time.sleep(0.05)

    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(data)}, content=data
    )
    assert_created(response, repo, digest_of(data))
    assert_blob(client, repo, data)


def test_of_two_writers_at_one_offset_the_first_to_finish_is_recorded(client, repo):
    # No request holds an upload: each writes a part of its own, and the one that completes
    # first is recorded. The other fails with 416 and where to resume, having changed nothing.
    data = content(200_000, "race")
    location = start_upload(client, repo)
    assert_session(patch(client, location, data[:50_000], start=0), location, 50_000)

    chunk = data[50_000:150_000]
    with RawRequest(client) as raw:
        raw.open("PATCH", location, len(chunk), "50000-149999")
        other = content(100_000, "the other writer")
        assert_session(patch(client, location, other, start=50_000), location, 150_000)
        raw.send(chunk)
        status_line, headers = raw.read_head()
    assert status_line.startswith("HTTP/1.1 416"), status_line
    assert headers["range"] == "0-149999"
    assert headers["location"] == location

    assert_session(client.get(location), location, 150_000, status=204)
    response = client.put(location, params={"digest": digest_of(data[:150_000])})
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"


# --- volume and concurrency -----------------------------------------------------------------------


def chunked_push(client: httpx.Client, name: str, data: bytes, chunk: int) -> httpx.Response:
    with clone(client) as c:
        location = start_upload(c, name)
        for start in range(0, len(data), chunk):
            response = patch(c, location, data[start : start + chunk], start=start)
            assert_session(response, location, min(start + chunk, len(data)))
        return c.put(location, params={"digest": digest_of(data)})


@pytest.mark.parametrize("layout", ["same-repository", "different-repositories"])
def test_concurrent_uploads_of_the_same_blob(client, repo, layout):
    data = content(1024 * 1024, f"concurrent-{layout}")
    digest = digest_of(data)
    names = [repo if layout == "same-repository" else f"{repo}-{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda n: chunked_push(client, n, data, 300_000), names))
    for name, response in zip(names, responses, strict=True):
        assert_created(response, name, digest)
    for name in set(names):
        assert_blob(client, name, data)


def test_large_blob_in_chunks_streams_back_identical(client, repo):
    data = random_bytes(20 * 1024 * 1024)
    digest = digest_of(data)
    location = start_upload(client, repo)
    chunk = 6 * 1024 * 1024
    for start in range(0, len(data), chunk):
        response = patch(client, location, data[start : start + chunk], start=start)
        assert_session(response, location, min(start + chunk, len(data)))
    assert_created(client.put(location, params={"digest": digest}), repo, digest)

    received = hashlib.sha256()
    size = 0
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(data))
        for part in response.iter_bytes():
            received.update(part)
            size += len(part)
    assert size == len(data)
    assert f"sha256:{received.hexdigest()}" == digest
    middle = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10485000-10486000"})
    assert middle.status_code == 206
    assert middle.content == data[10_485_000:10_486_001]


def test_digest_algorithm_parameter(client, repo):
    """POST ?digest-algorithm=sha512 hashes with sha512 as the bytes stream in."""
    data = random_bytes(300_000)
    digest = digest_of(data, "sha512")
    start = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest-algorithm": "sha512"})
    assert start.status_code == 202
    location = start.headers["Location"]
    assert client.patch(location, content=data[:100_000]).status_code == 202
    assert client.patch(location, content=data[100_000:]).status_code == 202
    done = client.put(location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data

    refused = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest-algorithm": "md5"})
    assert refused.status_code == 400
    assert error_code(refused) == "DIGEST_INVALID"
