"""Plain-HTTP helpers for pushing test content; tests assert on the raw responses."""

from __future__ import annotations

import httpx

from tests.factories import Image, digest_of


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = digest_of(data)
    response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    return digest


def push_manifest(client: httpx.Client, name: str, reference: str, image: Image) -> httpx.Response:
    return client.put(
        f"/v2/{name}/manifests/{reference}",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )


def push_image(client: httpx.Client, name: str, image: Image, tag: str | None = None) -> str:
    """Push every blob and child, then the manifest by ``tag`` (or digest); return its digest."""
    for data in image.blobs.values():
        push_blob(client, name, data)
    for child in image.children:
        push_image(client, name, child)
    response = push_manifest(client, name, tag or image.digest, image)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == image.digest
    return image.digest


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """``response`` is the error envelope of ``code`` at ``status`` (a HEAD answer has no body)."""
    assert response.status_code == status, response.text
    if response.request.method != "HEAD":
        assert error_code(response) == code, response.text
