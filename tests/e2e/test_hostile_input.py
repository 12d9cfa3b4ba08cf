"""Hostile input that answered 500 (issue 9, defect 11), each against a real server.

Every test asserts the documented status and OCI code and that no body carries a traceback.
The classes: numbers of thousands of digits or of non-ASCII digits (``int()`` raises over 4,300
digits, ``"²".isdigit()`` is true), JSON too deep or with such numbers, datetimes without a
time zone or out of range, text that PostgreSQL or UTF-8 cannot hold (NUL, lone surrogates,
longer than its column), ids beyond the column, and a permitted-tag pattern that backtracked.
"""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import unique
from tests.factories import OCI_MANIFEST, canonical, descriptor, make_image
from tests.oci_errors import assert_documented, assert_no_traceback, assert_refused
from tests.registry_client import push_image

HUGE = "9" * 5000  # int() of more than 4,300 digits raises ValueError
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def pushed(client, repo):
    """A pushed image and its first layer: (image, layer digest, layer bytes)."""
    image = make_image(1, unique("hostile"))
    push_image(client, repo, image, "v1")
    manifest = json.loads(image.manifest)
    digest = manifest["layers"][0]["digest"]
    return image, digest, image.blobs[digest]


def new_upload(client, repo) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return str(response.headers["Location"])


# --- Range, Content-Range, Content-Length, n ---------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_range_start_of_thousands_of_digits_is_unsatisfiable(client, repo, pushed, method):
    _, digest, data = pushed
    response = client.request(
        method, f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={HUGE}-"}
    )
    assert_refused(response, 416, "UNSUPPORTED")
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", [f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes=0-{'0' * 5000}1"])
def test_range_ends_of_thousands_of_digits_are_clamped_to_the_blob(client, repo, pushed, header):
    _, digest, data = pushed
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206, response.text
    if header.endswith("1"):  # leading zeros: bytes 0-1
        assert response.content == data[:2]
        return
    assert response.content == data
    assert response.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"


@pytest.mark.parametrize("value", [b"bytes=\xb2-", b"bytes=0-\xb2", b"bytes=-\xb9"])
def test_range_of_non_ascii_digits_is_ignored(client, repo, pushed, value):
    # RFC 9110: a Range the server does not understand is ignored; "²".isdigit() is true.
    _, digest, data = pushed
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": value})
    assert response.status_code == 200, response.text
    assert response.content == data


@pytest.mark.parametrize(
    "value",
    [f"{HUGE}-{HUGE}", f"0-{HUGE}", f"bytes 0-{HUGE}/*", f"0-{2**63}", "0-\xb2", "\xb2-\xb2"],
)
def test_content_range_of_thousands_of_digits_is_range_invalid(client, repo, value):
    location = new_upload(client, repo)
    response = client.patch(
        location, content=b"x", headers={"Content-Range": value.encode("latin-1")}
    )
    assert_refused(response, 416, "BLOB_UPLOAD_INVALID")
    # Like every 416 of an upload, it says where to resume.
    assert response.headers["Range"] == "0-0"
    assert response.headers["Location"] == location
    finish = client.put(
        location,
        params={"digest": "sha256:" + "0" * 64},
        content=b"x",
        headers={"Content-Range": value.encode("latin-1")},
    )
    assert_refused(finish, 416, "BLOB_UPLOAD_INVALID")
    assert finish.headers["Range"] == "0-0"
    assert finish.headers["Location"] == location
    # The session survives the refusals.
    assert client.get(location).status_code == 204


def raw_request(registry, request: bytes) -> bytes:
    """Send bytes httpx would refuse to send; return what the server answers."""
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("value", [HUGE.encode(), b"\xb2", b"1\xd9\xa3", b"-1", b"1e3"])
def test_content_length_that_is_no_number_is_refused_by_the_http_server(registry, repo, value):
    # uvicorn's parser refuses these before the app sees them (plain text, no OCI body: the
    # app never runs); the app's own parser bounds the value too (test_responses).
    credentials = base64.b64encode(f"api:{registry.admin_key}".encode()).decode()
    answer = raw_request(
        registry,
        f"PUT /v2/{repo}/manifests/v1 HTTP/1.1\r\nHost: {registry.host}\r\n".encode()
        + f"Authorization: Basic {credentials}\r\nContent-Type: {OCI_MANIFEST}\r\n".encode()
        + b"Content-Length: "
        + value
        + b"\r\nConnection: close\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Traceback" not in answer
    assert httpx.get(f"{registry.url}/v2/", auth=registry.auth).status_code == 200


@pytest.mark.parametrize("value", [b"\x01", b"a\x1fb", b"\x7f", b"a\x00b"])
def test_control_characters_in_headers_are_refused_by_the_http_server(registry, repo, value):
    # RFC 9110 field values hold no control characters; uvicorn refuses them before the app.
    answer = raw_request(
        registry,
        f"GET /v2/{repo}/manifests/v1 HTTP/1.1\r\nHost: {registry.host}\r\n".encode()
        + b"Accept: "
        + value
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Traceback" not in answer


@pytest.mark.parametrize("listing", ["/v2/_catalog", "/v2/{repo}/tags/list"])
def test_n_of_thousands_of_digits_is_capped(client, repo, pushed, listing):
    response = client.get(listing.format(repo=repo), params={"n": HUGE})
    assert response.status_code == 200, response.text
    assert_no_traceback(response)


@pytest.mark.parametrize("listing", ["/v2/_catalog", "/v2/{repo}/tags/list"])
@pytest.mark.parametrize(
    "params",
    [
        {"n": "\u00b2"},
        {"n": "\u0663"},  # ARABIC-INDIC DIGIT THREE: int() would take it
        {"n": "-1"},
        {"n": "1.5"},
        {"n": " 1"},
        {"last": "\x00"},  # PostgreSQL refuses a NUL in a query: it was a 500 there
        {"last": "a\x00b"},
        {"last": "\u00e9"},
        {"last": "a" * 256},
    ],
)
def test_bad_n_and_last_are_pagination_errors(client, repo, pushed, listing, params):
    response = client.get(listing.format(repo=repo), params=params)
    assert_refused(response, 400, "UNSUPPORTED")


# --- JSON: huge integers, deep nesting ---------------------------------------------------------


def manifest_with(image_bytes: bytes, **changes: object) -> bytes:
    body = json.loads(image_bytes)
    body.update(changes)
    return canonical(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"schemaVersion": ' + HUGE.encode() + b"}",
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "x": '
        + b"1" * 4301 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"schemaVersion": 2, "annotations": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    ],
)  # fmt: skip
def test_manifest_json_too_deep_or_with_huge_integers(client, repo, body):
    response = client.put(
        f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    error = assert_refused(response, 400, "MANIFEST_INVALID")
    assert error["message"].startswith("invalid manifest: body is not valid JSON")


def test_manifest_sizes_beyond_int64_are_refused(client, repo, pushed):
    image, _, _ = pushed
    body = json.loads(image.manifest)
    body["layers"][0]["size"] = 10**4299  # 4,300 digits: json.loads takes it
    response = client.put(
        f"/v2/{repo}/manifests/v2", content=canonical(body), headers={"Content-Type": OCI_MANIFEST}
    )
    error = assert_refused(response, 400, "MANIFEST_INVALID")
    assert "layers[0].size" in error["message"]


@pytest.mark.parametrize(
    "artifact_type", ["a/" + "b" * 300, "a/b\x00", "\x00", "a/\ud800", "not-a-media-type"]
)
def test_artifact_types_that_no_column_holds_are_refused(client, repo, pushed, artifact_type):
    # A 300-character or NUL artifactType was stored: PostgreSQL answered 500.
    image, _, _ = pushed
    body = json.dumps({**json.loads(image.manifest), "artifactType": artifact_type}).encode()
    response = client.put(
        f"/v2/{repo}/manifests/v3", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    error = assert_refused(response, 400, "MANIFEST_INVALID")
    assert "artifactType must be a media type" in error["message"]


def test_a_config_media_type_that_would_be_the_artifact_type_is_checked(client, repo, pushed):
    image, _, _ = pushed
    body = json.loads(image.manifest)
    body["config"]["mediaType"] = "x" * 300
    response = client.put(
        f"/v2/{repo}/manifests/v4", content=canonical(body), headers={"Content-Type": OCI_MANIFEST}
    )
    assert_refused(response, 400, "MANIFEST_INVALID")


PROMOTE = "/api/promotions/promote"
KEY = {"type": "system", "systemApis": ["feeds"]}


@pytest.mark.parametrize(
    "body",
    [
        '{"packageName": ' + HUGE + "}",
        '{"packageName": "a", "x": [' + "1" * 4301 + "]}",
        "[" * 100_000 + "]" * 100_000,
        '{"packageName": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
        '{"packageName": "\\ud800", "version": "1.0.0", "fromFeed": "a", "toFeed": "b"}',
        '{"packageName": "a", "version": "1.0.0", "fromFeed": "a", "toFeed": "b", '
        '"comments": "\\u0000"}',
        "\xff\xfe",
    ],
)
def test_promote_body_too_deep_or_with_huge_integers(client, body):
    response = client.post(PROMOTE, content=body.encode("utf-8", "surrogatepass"), headers=JSON)
    assert_refused(response, 400, "REQUEST_INVALID")


def test_promote_form_with_nul_and_malformed_multipart(client):
    form = {"packageName": "a", "version": "1.0.0", "fromFeed": "a", "toFeed": "b"}
    response = client.post(PROMOTE, data=form | {"comments": "x\x00y"})
    assert_refused(response, 400, "REQUEST_INVALID")
    response = client.post(
        PROMOTE,
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert_documented(response)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/management/feeds/create",
        "/api/users/create",
        "/api/users/permissions",
        "/api/api-keys/create",
    ],
)
@pytest.mark.parametrize(
    "body",
    ['{"name": ' + HUGE + "}", "[" * 100_000 + "]" * 100_000, '{"name": "\\ud800"}', "{"],
)
def test_json_bodies_of_management_endpoints(client, path, body):
    # FastAPI's own refusal of these answered UNKNOWN (a 500's code) with status 400.
    response = client.post(path, content=body.encode(), headers=JSON)
    assert_refused(response, 400, "REQUEST_INVALID")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/management/feeds/create", {"name": "nul-description", "description": "a\x00b"}),
        ("/api/management/feeds/create", {"name": "a\x00"}),
        ("/api/users/permissions", {"user": "a\x00", "permissions": []}),
        ("/api/users/create", {"name": "nul-password", "password": "12345678\x00"}),
        ("/api/api-keys/create", KEY | {"description": "\x00"}),
        ("/api/api-keys/create", KEY | {"displayName": "x" * 201}),
    ],
)  # fmt: skip
def test_text_no_column_can_hold_is_refused(client, path, body):
    # NUL and text longer than its column reached PostgreSQL: 500 there.
    response = client.post(path, json=body)
    assert_refused(response, 400, "REQUEST_INVALID")


def test_a_feed_description_with_nul_is_refused_on_update(client, feed):
    response = client.post(f"/api/management/feeds/update/{feed}", json={"description": "\x00"})
    assert_refused(response, 400, "REQUEST_INVALID")
    assert client.get(f"/api/management/feeds/get/{feed}").json()["description"] is None


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("GET", "/api/management/feeds/get/a%00b", {}, 404, "NAME_UNKNOWN"),
        ("POST", "/api/management/feeds/update/a%00b", {}, 404, "NAME_UNKNOWN"),
        ("DELETE", "/api/management/feeds/delete/a%00b", {}, 404, "NAME_UNKNOWN"),
        ("GET", "/api/management/feeds/get/" + "a" * 5000, {}, 404, "NAME_UNKNOWN"),
        ("POST", "/api/users/delete", {"name": "a\x00"}, 404, "NAME_UNKNOWN"),
        ("GET", "/api/promotions/list", {"feed": "a\x00"}, 400, "REQUEST_INVALID"),
        ("GET", "/api/promotions/list", {"package": "a\x00"}, 400, "NAME_INVALID"),
        ("GET", "/api/promotions/list", {"version": "a\x00"}, 400, "TAG_INVALID"),
        ("POST", "/api/api-keys/delete", {"id": "9" * 19}, 400, "REQUEST_INVALID"),
        ("POST", "/api/api-keys/delete", {"id": str(2**31)}, 400, "REQUEST_INVALID"),
        ("POST", "/api/api-keys/delete", {"id": HUGE}, 400, "REQUEST_INVALID"),
        ("POST", "/api/api-keys/delete", {"id": "0"}, 400, "REQUEST_INVALID"),
    ],
)
def test_query_and_path_values_that_reached_sql(client, method, path, params, status, code):
    # Each of these reached a query; PostgreSQL refused the NUL or the out-of-range id: 500.
    body = {"json": {}} if method == "POST" and "update" in path else {}
    response = client.request(method, path, params=params, **body)
    assert_refused(response, status, code)


def test_the_largest_key_id_is_merely_unknown(client):
    response = client.post("/api/api-keys/delete", params={"id": str(2**31 - 1)})
    assert_refused(response, 404, "NAME_UNKNOWN")


# --- datetimes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expiration",
    [
        "2030-01-01T00:00:00",  # no time zone: the database layer raised on the naive datetime
        "2030-01-01 00:00:00",
        "9999-12-31T23:59:59-10:00",  # valid, but not in UTC's range
        "0001-01-01T00:00:00+14:00",
        "2030-13-01T00:00:00Z",
        HUGE,
    ],
)
def test_key_expiration_needs_a_time_zone_and_a_range(client, expiration):
    response = client.post("/api/api-keys/create", json=KEY | {"expiration": expiration})
    error = assert_refused(response, 400, "REQUEST_INVALID")
    assert "expiration" in error["message"]


def test_an_aware_expiration_is_stored_in_utc(client):
    name = unique("expiring")
    response = client.post(
        "/api/api-keys/create",
        json=KEY | {"displayName": name, "expiration": "2030-01-01T02:00:00+02:00"},
    )
    assert response.status_code == 200, response.text
    (row,) = [k for k in client.get("/api/api-keys/list").json() if k["displayName"] == name]
    expiration = datetime.fromisoformat(row["expiration"])
    assert expiration == datetime(2030, 1, 1, tzinfo=UTC)
    assert expiration.utcoffset() is not None


# --- upload ids and referrer filters -----------------------------------------------------------


@pytest.mark.parametrize(
    "upload_id",
    [
        "a%00b",
        "x" * 5000,
        "..%2e",
        "00000000-0000-0000-0000-00000000000g",
        "ABCDEF01-0000-0000-0000-000000000000",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_upload_ids_this_registry_never_made_are_unknown(client, repo, pushed, upload_id, method):
    params = {"digest": "sha256:" + "0" * 64} if method == "PUT" else {}
    response = client.request(
        method, f"/v2/{repo}/blobs/uploads/{upload_id}", params=params, content=b""
    )
    if "%2e" in upload_id:  # an escaped path: refused as such before any id is looked at
        assert_documented(response)
        assert response.status_code in (400, 404)
        return
    assert_refused(response, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("artifact_type", ["\x00", "a/b\x00", "x" * 300, "no-slash"])
def test_a_referrers_filter_that_is_no_media_type_matches_nothing(
    client, repo, pushed, artifact_type
):
    image, _, _ = pushed
    response = client.get(
        f"/v2/{repo}/referrers/{image.digest}", params={"artifactType": artifact_type}
    )
    assert response.status_code == 200, response.text
    assert response.json()["manifests"] == []


# --- permitted-tag patterns --------------------------------------------------------------------


# The thread method fails the run even while a backtracking regex holds the server's loop.
@pytest.mark.timeout(60, method="thread")
def test_a_backtracking_permitted_pattern_is_decided_at_once(client):
    feed = unique("patterns")
    created = client.post(
        "/api/management/feeds/create",
        json={
            "name": feed,
            "containerVersioning": True,
            "permittedTags": ["*a*a*a*a*a*a*a*b", "*a" * 60 + "*b"],
        },
    )
    assert created.status_code == 201, created.text
    image = make_image(1, unique("patterns"))
    for data in image.blobs.values():
        digest = descriptor("x/y", data)["digest"]
        client.post(f"/v2/{feed}/app/blobs/uploads/", params={"digest": digest}, content=data)
    for tag in ("a" * 64, "a" * 128):  # 9.6 s for 64 characters with the old regex
        response = client.put(
            f"/v2/{feed}/app/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert_refused(response, 400, "TAG_INVALID")
    response = client.put(
        f"/v2/{feed}/app/manifests/{'a' * 100}b",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert response.status_code == 201, response.text


# --- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/", "/v2/_auth", "/api/management/feeds/list"])
def test_a_basic_user_name_with_nul_is_unauthorized(registry, path):
    response = httpx.get(registry.url + path, auth=("a\x00b", "not-the-password"))
    assert_refused(response, 401, "UNAUTHORIZED")
