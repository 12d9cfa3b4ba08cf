"""Manifest PUT/GET/HEAD/DELETE end to end, over plain httpx: every manifest type, Accept
negotiation, multi-tag pushes, subjects, and every way a manifest push is refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.conftest import unique
from tests.factories import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    canonical,
    descriptor,
    digest_of,
    make_artifact,
    make_image,
    make_index,
)
from tests.registry_client import error_code, push_blob, push_image, push_manifest

MAX_MANIFEST = 4 * 1024 * 1024

KINDS: dict[str, Callable[[], Image]] = {
    "oci-image": lambda: make_image(2, "oci-image"),
    "oci-index": lambda: make_index("oci-index"),
    "docker-image": lambda: make_image(2, "docker-image", docker=True),
    "docker-list": lambda: make_index("docker-list", docker=True),
    "artifact": lambda: make_artifact("application/vnd.example.sbom+json", b'{"sbom": 1}'),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Image:
    return KINDS[request.param]()


def push_content(client: httpx.Client, name: str, image: Image) -> None:
    """Push the blobs and child manifests ``image`` needs, but not ``image`` itself."""
    for data in image.blobs.values():
        push_blob(client, name, data)
    for child in image.children:
        push_image(client, name, child)


def put(
    client: httpx.Client,
    name: str,
    reference: str,
    body: bytes,
    media_type: str | None,
    tags: Sequence[str] = (),
) -> httpx.Response:
    headers = {"Content-Type": media_type} if media_type else {}
    params = httpx.QueryParams([("tag", tag) for tag in tags])
    return client.put(
        f"/v2/{name}/manifests/{reference}", content=body, headers=headers, params=params
    )


def assert_created(response: httpx.Response, name: str, body: bytes) -> str:
    digest = digest_of(body)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/{name}/manifests/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def assert_manifest(
    client: httpx.Client, name: str, reference: str, body: bytes, media_type: str
) -> None:
    """GET and HEAD of ``reference`` return ``body`` exactly, with the right headers."""
    response = client.get(f"/v2/{name}/manifests/{reference}")
    assert response.status_code == 200, response.text
    assert response.content == body
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert response.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Length"] == str(len(body))

    head = client.head(f"/v2/{name}/manifests/{reference}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Docker-Content-Digest"] == digest_of(body)
    assert head.headers["Content-Type"] == media_type
    assert head.headers["Content-Length"] == str(len(body))


def assert_manifest_unknown(client: httpx.Client, name: str, reference: str) -> None:
    response = client.get(f"/v2/{name}/manifests/{reference}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "MANIFEST_UNKNOWN"
    head = client.head(f"/v2/{name}/manifests/{reference}")
    assert head.status_code == 404
    assert head.content == b""


def assert_refused(
    response: httpx.Response, status: int, code: str, client: httpx.Client, name: str, body: bytes
) -> dict[str, Any]:
    """The push was refused with ``status``/``code`` and left nothing behind."""
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert errors[0]["code"] == code
    assert "Docker-Content-Digest" not in response.headers
    assert "Location" not in response.headers
    assert_manifest_unknown(client, name, "v1")
    assert_manifest_unknown(client, name, digest_of(body))
    return dict(errors[0]["detail"])


def reformat(body: bytes) -> bytes:
    """The same JSON with odd whitespace, reversed key order, escapes and non-ASCII text."""
    data = json.loads(body)
    data["annotations"] = {**data.get("annotations", {}), "org.example.note": "caf\u00e9 \u2603"}
    reordered = dict(reversed(list(data.items())))
    text = json.dumps(reordered, indent="\t", separators=(" ,", " :  "), ensure_ascii=False)
    return ("\r\n  " + text.replace("\n", "\r\n \t") + "\n\n").encode()


# --- round trips -------------------------------------------------------------------------------


def test_put_by_tag_then_get_and_head_by_tag_and_digest(client, repo, kind):
    push_content(client, repo, kind)
    response = push_manifest(client, repo, "v1", kind)
    digest = assert_created(response, repo, kind.manifest)
    assert digest == kind.digest
    assert "OCI-Subject" not in response.headers
    assert "OCI-Tag" not in response.headers
    assert_manifest(client, repo, "v1", kind.manifest, kind.media_type)
    assert_manifest(client, repo, digest, kind.manifest, kind.media_type)


def test_put_by_digest_then_get_and_head(client, repo, kind):
    push_content(client, repo, kind)
    response = push_manifest(client, repo, kind.digest, kind)
    assert_created(response, repo, kind.manifest)
    assert "OCI-Tag" not in response.headers
    assert_manifest(client, repo, kind.digest, kind.manifest, kind.media_type)
    assert_manifest_unknown(client, repo, "v1")


def test_delete_by_tag_removes_only_the_tag(client, repo, kind):
    push_content(client, repo, kind)
    assert_created(push_manifest(client, repo, "v1", kind), repo, kind.manifest)
    assert_created(push_manifest(client, repo, "v2", kind), repo, kind.manifest)

    response = client.delete(f"/v2/{repo}/manifests/v1")
    assert response.status_code == 202, response.text
    assert_manifest_unknown(client, repo, "v1")
    assert_manifest(client, repo, "v2", kind.manifest, kind.media_type)
    assert_manifest(client, repo, kind.digest, kind.manifest, kind.media_type)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v2"]


def test_delete_by_digest_removes_the_manifest_and_its_tags(client, repo, kind):
    push_content(client, repo, kind)
    assert_created(push_manifest(client, repo, "v1", kind), repo, kind.manifest)
    assert_created(push_manifest(client, repo, "v2", kind), repo, kind.manifest)

    response = client.delete(f"/v2/{repo}/manifests/{kind.digest}")
    assert response.status_code == 202, response.text
    assert_manifest_unknown(client, repo, kind.digest)
    assert_manifest_unknown(client, repo, "v1")
    assert_manifest_unknown(client, repo, "v2")
    assert not client.get(f"/v2/{repo}/tags/list").json()["tags"]

    again = client.delete(f"/v2/{repo}/manifests/{kind.digest}")
    assert again.status_code == 404
    assert error_code(again) == "MANIFEST_UNKNOWN"


def test_delete_unknown_tag_and_digest(client, repo):
    push_image(client, repo, make_image(1, "delete-unknown"), "v1")
    for reference in ("nope", "sha256:" + "1" * 64):
        response = client.delete(f"/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404, response.text
        assert error_code(response) == "MANIFEST_UNKNOWN"
    assert client.get(f"/v2/{repo}/manifests/v1").status_code == 200


def test_delete_of_an_invalid_reference(client, repo):
    push_image(client, repo, make_image(1, "delete-invalid"), "v1")
    response = client.delete(f"/v2/{repo}/manifests/-bad")
    assert response.status_code == 400
    assert error_code(response) == "TAG_INVALID"
    response = client.delete(f"/v2/{repo}/manifests/sha256:short")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.parametrize("docker", [False, True])
def test_non_canonical_json_is_stored_byte_for_byte(client, repo, docker):
    image = make_image(2, "odd-json", docker=docker)
    push_content(client, repo, image)
    body = reformat(image.manifest)
    assert body != image.manifest
    assert json.loads(body)["layers"] == json.loads(image.manifest)["layers"]
    digest = assert_created(put(client, repo, "v1", body, image.media_type), repo, body)
    assert digest != image.digest
    assert_manifest(client, repo, "v1", body, image.media_type)
    assert_manifest(client, repo, digest, body, image.media_type)


def test_non_canonical_index_is_stored_byte_for_byte(client, repo):
    index = make_index("odd-index")
    push_content(client, repo, index)
    body = reformat(index.manifest)
    digest = assert_created(put(client, repo, digest_of(body), body, OCI_INDEX), repo, body)
    assert_manifest(client, repo, digest, body, OCI_INDEX)


def test_content_type_with_parameters_is_accepted(client, repo):
    image = make_image(1, "ct-params")
    push_content(client, repo, image)
    response = put(client, repo, "v1", image.manifest, f"{OCI_MANIFEST}; charset=utf-8")
    assert_created(response, repo, image.manifest)
    assert_manifest(client, repo, "v1", image.manifest, OCI_MANIFEST)


def test_media_type_from_the_body_when_content_type_is_missing(client, repo):
    image = make_image(1, "no-ct")
    push_content(client, repo, image)
    response = put(client, repo, "v1", image.manifest, None)
    assert_created(response, repo, image.manifest)
    assert_manifest(client, repo, "v1", image.manifest, OCI_MANIFEST)


def test_media_type_from_content_type_when_the_body_has_none(client, repo):
    image = make_image(1, "no-mt")
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    del data["mediaType"]
    body = canonical(data)
    assert_created(put(client, repo, "v1", body, OCI_MANIFEST), repo, body)
    assert_manifest(client, repo, "v1", body, OCI_MANIFEST)


def test_repush_of_the_same_manifest_under_the_same_tag(client, repo):
    image = make_image(2, "repush")
    push_content(client, repo, image)
    for _ in range(3):
        assert_created(push_manifest(client, repo, "v1", image), repo, image.manifest)
    assert_manifest(client, repo, "v1", image.manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_moving_a_tag_to_another_manifest(client, repo):
    first = make_image(1, "move-a")
    second = make_image(1, "move-b", docker=True)
    push_image(client, repo, first, "current")
    push_image(client, repo, second, "current")
    assert_manifest(client, repo, "current", second.manifest, DOCKER_MANIFEST)
    assert_manifest(client, repo, first.digest, first.manifest, OCI_MANIFEST)
    push_image(client, repo, first, "current")
    assert_manifest(client, repo, "current", first.manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["current"]


def test_same_manifest_in_two_repositories_is_independent(client, feed):
    image = make_image(1, "two-repos")
    first, second = f"{feed}/one", f"{feed}/two"
    push_image(client, first, image, "v1")
    push_image(client, second, image, "v1")
    assert client.delete(f"/v2/{first}/manifests/{image.digest}").status_code == 202
    assert_manifest_unknown(client, first, image.digest)
    assert_manifest(client, second, "v1", image.manifest, OCI_MANIFEST)


def test_manifest_of_another_repository_is_not_served(client, feed):
    image = make_image(1, "cross-repo-get")
    push_image(client, f"{feed}/one", image, "v1")
    push_image(client, f"{feed}/two", make_image(1, "cross-repo-other"), "v0")
    assert_manifest_unknown(client, f"{feed}/two", image.digest)
    assert_manifest_unknown(client, f"{feed}/two", "v1")
    response = client.delete(f"/v2/{feed}/two/manifests/{image.digest}")
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"
    assert_manifest(client, f"{feed}/one", "v1", image.manifest, OCI_MANIFEST)


def test_tags_are_case_sensitive(client, repo):
    lower, upper = make_image(1, "case-lower"), make_image(1, "case-upper")
    push_image(client, repo, lower, "release")
    push_image(client, repo, upper, "RELEASE")
    assert_manifest(client, repo, "release", lower.manifest, OCI_MANIFEST)
    assert_manifest(client, repo, "RELEASE", upper.manifest, OCI_MANIFEST)


def test_longest_valid_tag(client, repo):
    tag = "T" + "a1._-" * 25 + "xy"
    assert len(tag) == 128
    image = make_image(1, "long-tag")
    push_image(client, repo, image, tag)
    assert_manifest(client, repo, tag, image.manifest, OCI_MANIFEST)


# --- Accept negotiation ------------------------------------------------------------------------


ALL_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST]


TAG_OF = {OCI_MANIFEST: "oci", OCI_INDEX: "oci-index", DOCKER_MANIFEST: "docker"}
TAG_OF[DOCKER_LIST] = "docker-list"


@pytest.fixture(scope="module")
def stored(registry) -> Iterator[tuple[str, dict[str, Image]]]:
    """One manifest of each type in a repository of its own, tagged ``TAG_OF[media_type]``.

    Shared by the read-only Accept tests of this module (per backend) to keep them fast.
    """
    images = {
        OCI_MANIFEST: make_image(1, "acc-oci"),
        OCI_INDEX: make_index("acc-index"),
        DOCKER_MANIFEST: make_image(1, "acc-docker", docker=True),
        DOCKER_LIST: make_index("acc-list", docker=True),
    }
    with httpx.Client(base_url=registry.url, timeout=60, auth=registry.auth) as c:
        feed = unique("accept")
        response = c.post("/api/management/feeds/create", json={"name": feed})
        assert response.status_code == 201, response.text
        repo = f"{feed}/negotiation"
        for media_type, image in images.items():
            push_image(c, repo, image, TAG_OF[media_type])
        yield repo, images


@pytest.mark.parametrize("media_type", ALL_TYPES)
def test_accept_listing_the_type(client, stored, media_type):
    repo, images = stored
    image = images[media_type]
    response = client.get(f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": media_type})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == media_type
    assert response.content == image.manifest


@pytest.mark.parametrize("media_type", ALL_TYPES)
def test_accept_as_one_comma_separated_list_with_quality(client, stored, media_type):
    repo, images = stored
    image = images[media_type]
    accept = ", ".join(f"{t};q=0.{i + 5}" for i, t in enumerate(ALL_TYPES))
    response = client.get(f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.content == image.manifest


@pytest.mark.parametrize("media_type", ALL_TYPES)
def test_accept_as_several_header_lines(client, stored, media_type):
    repo, images = stored
    image = images[media_type]
    # skopeo and containerd send one Accept line per type
    headers = [("Accept", t) for t in ALL_TYPES]
    response = client.get(f"/v2/{repo}/manifests/{image.digest}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content == image.manifest
    head = client.head(f"/v2/{repo}/manifests/{image.digest}", headers=headers)
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == image.digest


@pytest.mark.parametrize("media_type", ALL_TYPES)
def test_accept_excluding_the_type_is_manifest_unknown(client, stored, media_type):
    repo, images = stored
    image = images[media_type]
    others = [t for t in ALL_TYPES if t != media_type]
    for accept in [[("Accept", t) for t in others], [("Accept", ", ".join(others))]]:
        response = client.get(f"/v2/{repo}/manifests/{image.digest}", headers=accept)
        assert response.status_code == 404, response.text
        assert error_code(response) == "MANIFEST_UNKNOWN"
        head = client.head(f"/v2/{repo}/manifests/{image.digest}", headers=accept)
        assert head.status_code == 404
        assert head.content == b""


def test_accept_only_docker_for_an_oci_manifest_by_tag(client, stored):
    repo, _ = stored
    response = client.get(f"/v2/{repo}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 404, response.text
    assert error_code(response) == "MANIFEST_UNKNOWN"
    response = client.get(f"/v2/{repo}/manifests/docker", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 404, response.text
    assert error_code(response) == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize("accept", ["*/*", "application/*", "text/html, */*;q=0.1"])
def test_accept_wildcards(client, stored, accept):
    repo, images = stored
    for media_type, image in images.items():
        response = client.get(f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": accept})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == media_type
        assert response.content == image.manifest


def test_no_accept_header_serves_any_type(client, stored):
    repo, images = stored
    for media_type, image in images.items():
        request = client.build_request("GET", f"/v2/{repo}/manifests/{image.digest}")
        del request.headers["Accept"]
        response = client.send(request)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == media_type


# --- refused pushes ----------------------------------------------------------------------------


def test_missing_blobs_are_listed(client, repo):
    image = make_image(3, "missing-blob")
    data = json.loads(image.manifest)
    config_digest = data["config"]["digest"]
    push_blob(client, repo, image.blobs[config_digest])
    response = push_manifest(client, repo, "v1", image)
    detail = assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, repo, image.manifest)
    layers = {layer["digest"] for layer in data["layers"]}
    assert set(detail["digests"]) == layers
    for digest in layers:
        assert digest in response.json()["errors"][0]["message"]


def test_missing_config_blob(client, repo):
    image = make_image(1, "missing-config")
    config_digest = json.loads(image.manifest)["config"]["digest"]
    for digest, data in image.blobs.items():
        if digest != config_digest:
            push_blob(client, repo, data)
    response = push_manifest(client, repo, "v1", image)
    detail = assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, repo, image.manifest)
    assert detail["digests"] == [config_digest]


@pytest.mark.parametrize("docker", [False, True])
def test_missing_child_manifest_of_an_index(client, repo, docker):
    index = make_index("missing-child", docker=docker)
    present, absent = index.children
    push_image(client, repo, present)
    for data in absent.blobs.values():
        push_blob(client, repo, data)
    response = push_manifest(client, repo, "v1", index)
    detail = assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, repo, index.manifest)
    assert detail["digests"] == [absent.digest]


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("config", lambda m: m["config"].update(size=999_999)),
        ("layers[1]", lambda m: m["layers"][1].update(size=m["layers"][1]["size"] - 1)),
    ],
)
def test_a_descriptor_with_the_wrong_size_is_refused(client, repo, where, change):
    # Every pull of such an image would fail: clients check the size before the digest.
    image = make_image(2, unique("sizes"))
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    change(data)
    wrong = Image(canonical(data), OCI_MANIFEST, image.blobs)
    response = push_manifest(client, repo, "v1", wrong)
    detail = assert_refused(response, 400, "MANIFEST_INVALID", client, repo, wrong.manifest)
    assert detail["descriptor"] == where
    assert where in response.json()["errors"][0]["message"]
    assert detail["size"] != detail["actual"]


def test_a_child_descriptor_with_the_wrong_size_is_refused(client, repo):
    index = make_index(unique("child-sizes"))
    for child in index.children:
        push_image(client, repo, child)
    data = json.loads(index.manifest)
    data["manifests"][0]["size"] += 7
    wrong = Image(canonical(data), OCI_INDEX, {}, index.children)
    response = push_manifest(client, repo, "v1", wrong)
    detail = assert_refused(response, 400, "MANIFEST_INVALID", client, repo, wrong.manifest)
    assert detail["descriptor"] == "manifests[0]"


def test_blob_in_another_repository_only(client, feed):
    image = make_image(2, "other-repo")
    push_content(client, f"{feed}/other", image)
    name = f"{feed}/team/app"
    response = push_manifest(client, name, "v1", image)
    detail = assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, name, image.manifest)
    assert set(detail["digests"]) == set(image.blobs)


def test_child_manifest_in_another_repository_only(client, feed):
    index = make_index("other-child")
    push_content(client, f"{feed}/other", index)
    name = f"{feed}/team/app"
    for child in index.children:
        push_content(client, name, child)
    response = push_manifest(client, name, "v1", index)
    detail = assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, name, index.manifest)
    assert set(detail["digests"]) == {child.digest for child in index.children}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"',
        b"[1, 2, 3]",
        b'"a string"',
        b"\xff\xfe{}",
    ],
)
def test_invalid_json_is_manifest_invalid(client, repo, body):
    response = put(client, repo, "v1", body, OCI_MANIFEST)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


def test_media_type_mismatch_between_body_and_content_type(client, repo):
    image = make_image(1, "mismatch")
    push_content(client, repo, image)
    for content_type in (DOCKER_MANIFEST, OCI_INDEX):
        response = put(client, repo, "v1", image.manifest, content_type)
        assert_refused(response, 400, "MANIFEST_INVALID", client, repo, image.manifest)


def test_unknown_media_type(client, repo):
    image = make_image(1, "unknown-type")
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    data["mediaType"] = "application/vnd.example.manifest.v1+json"
    body = canonical(data)
    response = put(client, repo, "v1", body, "application/vnd.example.manifest.v1+json")
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)
    del data["mediaType"]
    body = canonical(data)
    response = put(client, repo, "v1", body, "application/json")
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


def test_no_media_type_anywhere(client, repo):
    image = make_image(1, "no-type")
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    del data["mediaType"]
    body = canonical(data)
    response = put(client, repo, "v1", body, None)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


@pytest.mark.parametrize("schema_version", [1, 3, "2", None, "missing"])
def test_wrong_schema_version(client, repo, schema_version):
    image = make_image(1, "schema-version")
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    if schema_version == "missing":
        del data["schemaVersion"]
    else:
        data["schemaVersion"] = schema_version
    body = canonical(data)
    response = put(client, repo, "v1", body, OCI_MANIFEST)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ],
)
def test_docker_schema1_is_refused(client, repo, content_type):
    layer = b"schema1-layer"
    push_blob(client, repo, layer)
    body = json.dumps(
        {
            "schemaVersion": 1,
            "name": repo,
            "tag": "v1",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": digest_of(layer)}],
            "history": [{"v1Compatibility": '{"id":"abc"}'}],
            "signatures": [],
        },
        indent=3,
    ).encode()
    response = put(client, repo, "v1", body, content_type)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("config"),
        lambda m: m.pop("layers"),
        lambda m: m.update(layers={"not": "a list"}),
        lambda m: m["layers"][0].pop("digest"),
        lambda m: m["layers"][0].update(digest="sha256:tooshort"),
        lambda m: m["layers"][0].update(size=-1),
        lambda m: m["layers"][0].update(size="12"),
        lambda m: m["config"].pop("mediaType"),
        lambda m: m.update(annotations={"key": 1}),
        lambda m: m.update(subject="sha256:" + "0" * 64),
    ],
    ids=[
        "no-config",
        "no-layers",
        "layers-object",
        "no-digest",
        "bad-digest",
        "negative-size",
        "string-size",
        "no-media-type",
        "annotation-int",
        "subject-string",
    ],
)
def test_malformed_manifest_fields(client, repo, mutate):
    image = make_image(1, "malformed")
    push_content(client, repo, image)
    data = json.loads(image.manifest)
    mutate(data)
    body = canonical(data)
    response = put(client, repo, "v1", body, OCI_MANIFEST)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


def test_index_without_manifests_array(client, repo):
    body = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX})
    response = put(client, repo, "v1", body, OCI_INDEX)
    assert_refused(response, 400, "MANIFEST_INVALID", client, repo, body)


def big_manifest(image: Image, size: int) -> bytes:
    data = json.loads(image.manifest)
    data["annotations"] = {"org.example.padding": ""}
    padding = size - len(canonical(data))
    data["annotations"]["org.example.padding"] = "x" * padding
    body = canonical(data)
    assert len(body) == size
    return body


def test_manifest_over_4_mib_is_413(client, repo):
    image = make_image(1, "too-big")
    push_content(client, repo, image)
    body = big_manifest(image, MAX_MANIFEST + 1)
    response = put(client, repo, "v1", body, OCI_MANIFEST)
    assert_refused(response, 413, "MANIFEST_INVALID", client, repo, body)


def test_manifest_over_4_mib_without_content_length_is_413(client, repo):
    image = make_image(1, "too-big-chunked")
    push_content(client, repo, image)
    body = big_manifest(image, MAX_MANIFEST + 100_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    response = client.put(
        f"/v2/{repo}/manifests/v1", content=chunks(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert "Content-Length" not in response.request.headers
    assert_refused(response, 413, "MANIFEST_INVALID", client, repo, body)


def test_manifest_of_exactly_4_mib_is_accepted(client, repo):
    image = make_image(1, "max-size")
    push_content(client, repo, image)
    body = big_manifest(image, MAX_MANIFEST)
    digest = assert_created(put(client, repo, "v1", body, OCI_MANIFEST), repo, body)
    assert_manifest(client, repo, digest, body, OCI_MANIFEST)


def test_put_by_digest_that_does_not_match_the_body(client, repo):
    image = make_image(1, "digest-mismatch")
    push_content(client, repo, image)
    wrong = digest_of(image.manifest + b" ")
    response = put(client, repo, wrong, image.manifest, OCI_MANIFEST)
    assert_refused(response, 400, "DIGEST_INVALID", client, repo, image.manifest)
    assert_manifest_unknown(client, repo, wrong)
    assert_manifest_unknown(client, repo, image.digest)


@pytest.mark.parametrize(
    "reference", ["sha256:abc", "sha256:" + "G" * 64, "md5:" + "0" * 32, "sha256:" + "A" * 64]
)
def test_malformed_digest_reference(client, repo, reference):
    image = make_image(1, "bad-digest-ref")
    push_content(client, repo, image)
    response = put(client, repo, reference, image.manifest, OCI_MANIFEST)
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert_unknown_on_get_and_head(client, repo, reference)


def assert_unknown_on_get_and_head(client, repo, reference):
    """A pull of a reference that is neither a tag nor a digest: 404, as in distribution."""
    response = client.get(f"/v2/{repo}/manifests/{reference}")
    assert response.status_code == 404, response.text
    assert error_code(response) == "MANIFEST_UNKNOWN"
    assert response.json()["errors"][0]["detail"] == {"reference": unquote(reference)}
    response = client.head(f"/v2/{repo}/manifests/{reference}")
    assert response.status_code == 404
    assert response.content == b""


def test_unknown_tag_and_digest(client, repo):
    push_image(client, repo, make_image(1, "known"), "v0")
    assert_manifest_unknown(client, repo, "v1")
    assert_manifest_unknown(client, repo, "sha256:" + "2" * 64)


def test_unknown_repository_in_a_known_feed(client, feed):
    response = client.get(f"/v2/{feed}/never/pushed/manifests/v1")
    assert response.status_code == 404, response.text
    assert error_code(response) in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "tag", ["-bad", ".bad", "a" * 129, "bad+build", "bad tag", "bäd", "bad%21"]
)
def test_invalid_tag(client, repo, tag):
    image = make_image(1, "bad-tag")
    push_content(client, repo, image)
    response = put(client, repo, tag, image.manifest, OCI_MANIFEST)
    assert response.status_code == 400, response.text
    assert error_code(response) == "TAG_INVALID"
    assert_unknown_on_get_and_head(client, repo, tag)
    assert_manifest_unknown(client, repo, image.digest)
    assert not client.get(f"/v2/{repo}/tags/list").json()["tags"]


# --- multi-tag pushes --------------------------------------------------------------------------


def test_multi_tag_push_by_digest(client, repo):
    image = make_image(1, "multi-tag")
    push_content(client, repo, image)
    response = put(client, repo, image.digest, image.manifest, OCI_MANIFEST, ["a", "b"])
    assert_created(response, repo, image.manifest)
    assert sorted(response.headers.get_list("OCI-Tag")) == ["a", "b"]
    for tag in ("a", "b"):
        assert_manifest(client, repo, tag, image.manifest, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "b"]


def test_multi_tag_push_with_many_tags(client, repo):
    image = make_image(1, "many-tags")
    push_content(client, repo, image)
    tags = [f"t{i:02d}" for i in range(20)]
    response = put(client, repo, image.digest, image.manifest, OCI_MANIFEST, tags)
    assert_created(response, repo, image.manifest)
    assert sorted(response.headers.get_list("OCI-Tag")) == tags
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == tags


def test_multi_tag_push_with_an_invalid_tag_stores_nothing(client, repo):
    image = make_image(1, "multi-bad")
    push_content(client, repo, image)
    response = put(client, repo, image.digest, image.manifest, OCI_MANIFEST, ["v1", "-x"])
    assert_refused(response, 400, "TAG_INVALID", client, repo, image.manifest)
    assert_manifest_unknown(client, repo, image.digest)


def test_multi_tag_push_with_missing_blobs_stores_nothing(client, repo):
    image = make_image(1, "multi-missing")
    response = put(client, repo, image.digest, image.manifest, OCI_MANIFEST, ["v1", "v2"])
    assert_refused(response, 400, "MANIFEST_BLOB_UNKNOWN", client, repo, image.manifest)
    assert_manifest_unknown(client, repo, "v2")


# --- subject -----------------------------------------------------------------------------------


def test_oci_subject_header_when_the_manifest_has_a_subject(client, repo):
    subject = make_image(1, "absent-subject")
    artifact = make_artifact("application/vnd.example.signature", b"sig", subject=subject)
    push_content(client, repo, artifact)
    response = push_manifest(client, repo, artifact.digest, artifact)
    assert_created(response, repo, artifact.manifest)
    assert response.headers["OCI-Subject"] == subject.digest
    assert_manifest(client, repo, artifact.digest, artifact.manifest, OCI_MANIFEST)
    assert_manifest_unknown(client, repo, subject.digest)


def test_oci_subject_header_for_an_index_with_a_subject(client, repo):
    subject = make_image(1, "index-subject")
    push_image(client, repo, subject, "v1")
    child = make_image(1, "index-child")
    push_image(client, repo, child)
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [descriptor(OCI_MANIFEST, child.manifest)],
            "subject": descriptor(OCI_MANIFEST, subject.manifest),
        }
    )
    response = put(client, repo, digest_of(body), body, OCI_INDEX)
    assert_created(response, repo, body)
    assert response.headers["OCI-Subject"] == subject.digest
