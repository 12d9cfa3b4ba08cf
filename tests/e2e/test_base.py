"""The /v2 base endpoint, unknown routes, wrong methods and the error envelope, over plain httpx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import OCI_MANIFEST, make_image
from tests.registry_client import assert_error

API_VERSION = "registry/2.0"
# distribution-spec "Error Codes" table, plus TAG_INVALID (distribution's errcode) and UNKNOWN.
OCI_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "TAG_INVALID",
    "UNKNOWN",
}
MISSING = "sha256:" + "0" * 64


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with exactly one OCI error of ``code``; returns that error."""
    assert response.status_code == status, response.text
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}
    assert isinstance(body["errors"], list)
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert set(error) == {"code", "message", "detail"}
    assert error["code"] == code
    assert error["code"] in OCI_CODES
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert isinstance(error["detail"], dict)
    return dict(error)


# --- GET /v2/ ----------------------------------------------------------------------------------


def test_api_version_check(client):
    response = client.get("/v2/")
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.json() == {}


def test_api_version_check_without_trailing_slash(client):
    response = client.get("/v2")
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.json() == {}


def test_api_version_head_has_no_body(client):
    response = client.head("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.content == b""


def test_api_version_check_anonymous_is_challenged(anonymous_client):
    response = anonymous_client.get("/v2/")
    assert_envelope(response, 401, "UNAUTHORIZED")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'realm="' in challenge
    assert 'service="' in challenge


def test_api_version_check_with_wrong_key_is_refused(registry):
    with httpx.Client(base_url=registry.url, auth=("api", "semreg_not-a-key")) as c:
        response = c.get("/v2/")
    assert_envelope(response, 401, "UNAUTHORIZED")


# --- unknown routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/{repo}/unknown",
        "/v2/{repo}/manifests",
        "/v2/{repo}/blobs",
        "/v2/{repo}/tags",
        "/v2/{repo}/tags/list/extra",
        "/v2/{repo}/referrers",
        "/v2/_catalog/extra",
    ],
)
def test_unknown_path_under_v2_is_404_with_envelope(client, repo, path):
    response = client.get(path.format(repo=repo))
    error = assert_envelope(response, 404, "UNSUPPORTED")
    assert isinstance(error["detail"], dict)


def test_unknown_path_outside_v2_is_404_with_envelope(client):
    response = client.get("/no/such/endpoint")
    assert_envelope(response, 404, "UNSUPPORTED")


# --- wrong methods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/{repo}/tags/list"),
        ("DELETE", "/v2/{repo}/tags/list"),
        ("PATCH", "/v2/{repo}/manifests/latest"),
        ("POST", "/v2/{repo}/manifests/latest"),
        ("PUT", "/v2/{repo}/blobs/" + MISSING),
        ("POST", "/v2/{repo}/referrers/" + MISSING),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/"),
    ],
)
def test_wrong_method_on_known_path_is_405_unsupported(client, repo, method, path):
    response = client.request(method, path.format(repo=repo))
    assert_envelope(response, 405, "UNSUPPORTED")


def test_wrong_method_does_not_touch_the_repository(client, repo):
    image = make_image(1, "wrong-method")
    response = client.post(
        f"/v2/{repo}/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert_error(response, 405, "UNSUPPORTED")
    assert_error(client.get(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


# --- the envelope of every kind of error -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/{repo}/manifests/missing", 404, "MANIFEST_UNKNOWN"),
        # Neither a tag nor a digest: no such manifest, as in the reference registry.
        ("GET", "/v2/{repo}/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/{repo}/manifests/sha256:abc", 404, "MANIFEST_UNKNOWN"),
        ("PUT", "/v2/{repo}/manifests/-bad", 400, "TAG_INVALID"),
        ("PUT", "/v2/{repo}/manifests/sha256:abc", 400, "DIGEST_INVALID"),
        ("GET", "/v2/{repo}/blobs/" + MISSING, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000", 404,
         "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/{repo}/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/{feed}/Upper/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/nosuchfeed0/app/tags/list", 404, "NAME_UNKNOWN"),
        ("PUT", "/v2/{repo}/manifests/v1", 400, "MANIFEST_INVALID"),
        ("GET", "/v2/{repo}/unknown", 404, "UNSUPPORTED"),
        ("POST", "/v2/{repo}/tags/list", 405, "UNSUPPORTED"),
    ],
)  # fmt: skip
def test_error_bodies_have_the_oci_shape(client, feed, repo, method, path, status, code):
    response = client.request(
        method,
        path.format(repo=repo, feed=feed),
        content=b"not json" if method == "PUT" else None,
        headers={"Content-Type": OCI_MANIFEST} if method == "PUT" else None,
    )
    assert_envelope(response, status, code)


def test_head_errors_carry_status_and_version_header_without_body(client, repo):
    response = client.head(f"/v2/{repo}/manifests/missing")
    assert response.status_code == 404
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.content == b""
