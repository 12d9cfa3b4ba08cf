"""Manifest validation and the references a manifest declares (semreg.domain.manifest)."""

from __future__ import annotations

import json

import pytest

from semreg.domain import mediatypes as mt
from semreg.domain.digest import compute_digest, parse_digest
from semreg.domain.errors import ErrorCode, ManifestInvalid
from semreg.domain.manifest import (
    Descriptor,
    Manifest,
    parse_descriptor,
    parse_manifest,
    stored_blobs,
)
from tests.factories import canonical, descriptor, make_artifact, make_image, make_index

NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
SIZE_RULE = "size must be a non-negative integer of at most 9223372036854775807"


def image_body(**changes: object) -> dict[str, object]:
    """A valid OCI image manifest as a dict, with top-level fields replaced or removed (None)."""
    body: dict[str, object] = json.loads(make_image(layers=2, seed="m").manifest)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def layer(**changes: object) -> dict[str, object]:
    """A valid layer descriptor with fields replaced or removed (None)."""
    item = descriptor(mt.OCI_LAYER_GZIP, b"layer")
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def invalid(content_type: str | None, body: bytes | dict[str, object]) -> str:
    """Parse a manifest that must be refused and return the message."""
    raw = body if isinstance(body, bytes) else canonical(body)
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(content_type, raw)
    assert type(info.value) is ManifestInvalid
    assert info.value.code is ErrorCode.MANIFEST_INVALID
    assert info.value.message.startswith("invalid manifest: ")
    return info.value.message.removeprefix("invalid manifest: ")


# --- JSON and media type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "JSONDecodeError"),
        (b"{", "JSONDecodeError"),
        (b"{'a': 1}", "JSONDecodeError"),
        (b"\x80\x81{}", "UnicodeDecodeError"),
        (b"[" * 200_000 + b"]" * 200_000, "RecursionError"),
    ],
)
def test_body_that_is_not_json(body: bytes, error: str) -> None:
    assert invalid(mt.OCI_MANIFEST, body) == f"body is not valid JSON ({error})"


@pytest.mark.parametrize("body", [b"[]", b"null", b'"manifest"', b"2", b"true"])
def test_body_must_be_an_object(body: bytes) -> None:
    assert invalid(mt.OCI_MANIFEST, body) == "body must be a JSON object"


@pytest.mark.parametrize("value", [1, ["x"], {"a": "b"}, True])
def test_media_type_must_be_a_string(value: object) -> None:
    assert invalid(mt.OCI_MANIFEST, image_body(mediaType=value)) == "mediaType must be a string"


@pytest.mark.parametrize(
    ("content_type", "media_type"),
    [
        (None, mt.DOCKER_SCHEMA1),
        (None, mt.DOCKER_SCHEMA1_SIGNED),
        (mt.DOCKER_SCHEMA1, None),
        (mt.DOCKER_SCHEMA1_SIGNED, None),
        (f"{mt.DOCKER_SCHEMA1_SIGNED}; charset=utf-8", None),
        (mt.DOCKER_SCHEMA1_SIGNED, mt.DOCKER_SCHEMA1_SIGNED),
        (mt.OCI_MANIFEST, mt.DOCKER_SCHEMA1),
        (mt.DOCKER_SCHEMA1, mt.OCI_MANIFEST),
    ],
)
def test_schema1_is_refused(content_type: str | None, media_type: str | None) -> None:
    body = {"schemaVersion": 1, "name": "a/b", "tag": "latest", "fsLayers": [], "history": []}
    if media_type is not None:
        body["mediaType"] = media_type
    assert invalid(content_type, body) == (
        "Docker schema 1 manifests are not supported; push schema 2 or OCI"
    )


@pytest.mark.parametrize(
    ("content_type", "declared"),
    [
        (mt.DOCKER_MANIFEST, mt.OCI_MANIFEST),
        (mt.OCI_INDEX, mt.OCI_MANIFEST),
        ("application/json", mt.OCI_MANIFEST),
        (f"{mt.OCI_INDEX}; charset=utf-8", mt.OCI_MANIFEST),
    ],
)
def test_content_type_must_match_media_type(content_type: str, declared: str) -> None:
    header = content_type.split(";")[0]
    assert invalid(content_type, image_body(mediaType=declared)) == (
        f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
    )


@pytest.mark.parametrize("content_type", [None, "", "  ", ";charset=utf-8"])
def test_media_type_from_neither_body_nor_header(content_type: str | None) -> None:
    assert invalid(content_type, image_body(mediaType=None)) == (
        "no mediaType in the body and no Content-Type header"
    )


@pytest.mark.parametrize(
    ("content_type", "declared"),
    [
        ("application/json", None),
        ("application/octet-stream", None),
        (None, "application/vnd.oci.artifact.manifest.v1+json"),
        (None, mt.OCI_CONFIG),
        ("text/plain", "text/plain"),
    ],
)
def test_unknown_media_type(content_type: str | None, declared: str | None) -> None:
    name = declared or content_type
    message = invalid(content_type, image_body(mediaType=declared))
    expected = ", ".join(sorted(mt.MANIFESTS))
    assert message == f"unsupported manifest media type {name!r}; expected one of {expected}"


def test_empty_media_type_in_body_falls_back_to_the_header() -> None:
    manifest = parse_manifest(mt.OCI_MANIFEST, canonical(image_body(mediaType="")))
    assert manifest.media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    "content_type",
    [
        mt.OCI_MANIFEST,
        f"{mt.OCI_MANIFEST}; charset=utf-8",
        f"  {mt.OCI_MANIFEST}  ",
        None,
        "",
    ],
)
def test_declared_media_type_with_or_without_a_header(content_type: str | None) -> None:
    assert parse_manifest(content_type, make_image().manifest).media_type == mt.OCI_MANIFEST


def test_media_type_from_the_header_alone() -> None:
    body = canonical(image_body(mediaType=None))
    manifest = parse_manifest(f"{mt.DOCKER_MANIFEST}; charset=utf-8", body)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert not manifest.is_index


@pytest.mark.parametrize("version", [None, 1, 3, "2", [2], 2.5])
def test_schema_version_must_be_2(version: object) -> None:
    body = image_body(schemaVersion=version)
    if version is None:
        assert "schemaVersion" not in body
    assert invalid(None, body) == "schemaVersion must be 2"


@pytest.mark.parametrize("value", [1, True, ["a"], {"a": "b"}])
def test_artifact_type_must_be_a_string(value: object) -> None:
    assert invalid(None, image_body(artifactType=value)) == "manifest.artifactType must be a string"


# --- structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [None, "x", 1, []])
def test_image_config_must_be_a_descriptor(config: object) -> None:
    body = image_body(config=None)
    if config is not None:
        body["config"] = config
    assert invalid(None, body) == "config must be an object"


@pytest.mark.parametrize("layers", [None, {}, "x", 1])
def test_image_layers_must_be_an_array(layers: object) -> None:
    assert invalid(None, image_body(layers=layers)) == "layers must be an array"


@pytest.mark.parametrize("manifests", [None, {}, "x"])
def test_index_manifests_must_be_an_array(manifests: object) -> None:
    body: dict[str, object] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX}
    if manifests is not None:
        body["manifests"] = manifests
    assert invalid(None, body) == "manifests must be an array"


def test_index_child_must_be_a_descriptor() -> None:
    child = make_image()
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [descriptor(mt.OCI_MANIFEST, child.manifest), {"digest": child.digest}],
    }
    assert invalid(None, body) == "manifests[1].mediaType must be a non-empty string"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("layer", "layers[1] must be an object"),
        (["a"], "layers[1] must be an object"),
        (None, "layers[1] must be an object"),
        (layer(mediaType=None), "layers[1].mediaType must be a non-empty string"),
        (layer(mediaType=""), "layers[1].mediaType must be a non-empty string"),
        (layer(mediaType=7), "layers[1].mediaType must be a non-empty string"),
        (layer(size=None), f"layers[1].{SIZE_RULE}"),
        (layer(size=-1), f"layers[1].{SIZE_RULE}"),
        (layer(size=True), f"layers[1].{SIZE_RULE}"),
        (layer(size=False), f"layers[1].{SIZE_RULE}"),
        (layer(size=1.5), f"layers[1].{SIZE_RULE}"),
        (layer(size="5"), f"layers[1].{SIZE_RULE}"),
        (layer(digest=None), "layers[1].digest must be a string"),
        (layer(digest=5), "layers[1].digest must be a string"),
        (
            layer(digest="sha256:xyz"),
            "layers[1].digest: invalid sha256 digest: expected 64 lower-case hex characters",
        ),
        (
            layer(digest="nonsense"),
            "layers[1].digest: invalid digest 'nonsense': expected <algorithm>:<hex>",
        ),
        (
            layer(digest="md5:d41d8cd98f00b204e9800998ecf8427e"),
            "layers[1].digest: unsupported digest algorithm 'md5': use sha256 or sha512",
        ),
        (layer(urls="https://example.com/x"), "layers[1].urls must be an array of strings"),
        (layer(urls=[1]), "layers[1].urls must be an array of strings"),
        (layer(urls=["https://a", None]), "layers[1].urls must be an array of strings"),
        (layer(urls={"a": "b"}), "layers[1].urls must be an array of strings"),
        (layer(annotations=["a"]), "layers[1].annotations must be an object of strings"),
        (layer(annotations="a=b"), "layers[1].annotations must be an object of strings"),
        (layer(annotations={"a": 1}), "layers[1].annotations must be an object of strings"),
        (layer(annotations={"a": None}), "layers[1].annotations must be an object of strings"),
        (layer(artifactType=3), "layers[1].artifactType must be a string"),
    ],
)
def test_bad_layer_descriptor(item: object, message: str) -> None:
    body = image_body()
    body["layers"] = [layer(), item]
    assert invalid(None, body) == message


def test_bad_config_descriptor_is_named() -> None:
    body = image_body()
    body["config"] = layer(size=-5)
    assert invalid(None, body) == f"config.{SIZE_RULE}"


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("sha256:abc", "subject must be an object"),
        ([], "subject must be an object"),
        (layer(digest="sha256:" + "A" * 64), "subject.digest: invalid sha256 digest"),
        (layer(size=-1), f"subject.{SIZE_RULE}"),
    ],
)
def test_bad_subject(subject: object, message: str) -> None:
    assert invalid(None, image_body(subject=subject)).startswith(message)


@pytest.mark.parametrize("annotations", [[], "x", {"a": 1}, {"a": ["b"]}, {"a": {"b": "c"}}])
def test_bad_manifest_annotations(annotations: object) -> None:
    assert invalid(None, image_body(annotations=annotations)) == (
        "manifest.annotations must be an object of strings"
    )


# --- happy paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("docker", [False, True])
def test_image_manifest(docker: bool) -> None:
    image = make_image(layers=3, seed="happy", docker=docker)
    manifest = parse_manifest(image.media_type, image.manifest)
    body = json.loads(image.manifest)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == (mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST)
    assert not manifest.is_index
    assert str(manifest.digest) == image.digest
    assert manifest.size == len(image.manifest)
    assert manifest.children == ()
    assert manifest.subject is None
    assert manifest.annotations == {}
    assert manifest.artifact_type == body["config"]["mediaType"]
    assert [str(d.digest) for d in manifest.blobs] == [
        body["config"]["digest"],
        *(item["digest"] for item in body["layers"]),
    ]
    assert set(image.blobs) == {str(d.digest) for d in manifest.blobs}
    config = manifest.blobs[0]
    assert config == Descriptor(
        media_type=mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
        digest=parse_digest(body["config"]["digest"]),
        size=body["config"]["size"],
    )
    assert config.urls == ()
    assert config.annotations == {}
    assert config.artifact_type is None
    assert stored_blobs(manifest) == manifest.blobs


@pytest.mark.parametrize("docker", [False, True])
def test_index(docker: bool) -> None:
    index = make_index(seed="happy-index", docker=docker)
    manifest = parse_manifest(index.media_type, index.manifest)
    assert manifest.media_type == (mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX)
    assert manifest.is_index
    assert str(manifest.digest) == index.digest
    assert manifest.blobs == ()
    assert stored_blobs(manifest) == ()
    assert [str(d.digest) for d in manifest.children] == [c.digest for c in index.children]
    assert [d.size for d in manifest.children] == [len(c.manifest) for c in index.children]
    assert {d.media_type for d in manifest.children} == {index.children[0].media_type}
    assert manifest.artifact_type is None
    assert manifest.subject is None


def test_empty_index_and_image_without_layers() -> None:
    index = parse_manifest(
        None, canonical({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    )
    assert index.children == ()
    image = parse_manifest(None, canonical(image_body(layers=[])))
    assert len(image.blobs) == 1


def test_index_with_artifact_type_subject_and_annotations() -> None:
    subject = make_image(seed="subject")
    child = make_image(seed="child")
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [descriptor(mt.OCI_MANIFEST, child.manifest, artifactType="x/y")],
            "subject": descriptor(subject.media_type, subject.manifest),
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    )
    manifest = parse_manifest(mt.OCI_INDEX, body)
    assert manifest.artifact_type == "application/vnd.example.bundle"
    assert manifest.subject is not None
    assert str(manifest.subject.digest) == subject.digest
    assert manifest.children[0].artifact_type == "x/y"
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


def test_artifact_type_from_artifact_type_field() -> None:
    subject = make_image(seed="signed")
    artifact = make_artifact("application/vnd.example.sbom", b"sbom", subject=subject)
    manifest = parse_manifest(mt.OCI_MANIFEST, artifact.manifest)
    assert manifest.artifact_type == "application/vnd.example.sbom"
    assert manifest.subject == Descriptor(
        media_type=mt.OCI_MANIFEST,
        digest=parse_digest(subject.digest),
        size=len(subject.manifest),
    )
    assert manifest.annotations == {"org.example.kind": "test"}
    assert manifest.blobs[0].media_type == mt.OCI_EMPTY
    assert {str(d.digest) for d in manifest.blobs} == set(artifact.blobs)


def test_artifact_type_falls_back_to_the_config_media_type() -> None:
    body = image_body()
    body["config"] = descriptor("application/vnd.example.config.v1+json", b"{}")
    manifest = parse_manifest(None, canonical(body))
    assert manifest.artifact_type == "application/vnd.example.config.v1+json"


def test_descriptor_fields_are_kept() -> None:
    body = image_body()
    body["layers"] = [
        layer(
            urls=["https://mirror.example/a"],
            annotations={"org.opencontainers.image.title": "a.tar"},
            artifactType="x/y",
        ),
        layer(urls=[], annotations=None),
    ]
    manifest = parse_manifest(None, canonical(body))
    first, second = manifest.blobs[1:]
    assert first.urls == ("https://mirror.example/a",)
    assert first.annotations == {"org.opencontainers.image.title": "a.tar"}
    assert first.artifact_type == "x/y"
    assert first.size == len(b"layer")
    assert first.digest == compute_digest(b"layer")
    assert second.urls == ()
    assert second.annotations == {}


def test_unknown_fields_are_ignored() -> None:
    body = image_body()
    body["x-extension"] = {"anything": [1, 2]}
    assert parse_manifest(None, canonical(body)).media_type == mt.OCI_MANIFEST


def test_digest_is_of_the_bytes_as_pushed() -> None:
    body = image_body()
    compact = canonical(body)
    pretty = json.dumps(body, indent=3).encode()
    assert parse_manifest(None, compact).digest == compute_digest(compact)
    assert parse_manifest(None, pretty).digest == compute_digest(pretty)
    assert parse_manifest(None, pretty).digest != parse_manifest(None, compact).digest
    assert parse_manifest(None, pretty).size == len(pretty)


def test_digest_algorithm_can_be_sha512() -> None:
    image = make_image()
    manifest = parse_manifest(None, image.manifest, algorithm="sha512")
    assert manifest.digest == compute_digest(image.manifest, "sha512")
    assert manifest.digest.algorithm == "sha512"


def test_sha512_descriptors_are_accepted() -> None:
    body = image_body()
    body["layers"] = [
        descriptor(mt.OCI_LAYER_GZIP, b"x") | {"digest": str(compute_digest(b"x", "sha512"))}
    ]
    manifest = parse_manifest(None, canonical(body))
    assert manifest.blobs[1].digest == compute_digest(b"x", "sha512")


# --- stored blobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("foreign", sorted(mt.NON_DISTRIBUTABLE))
def test_non_distributable_layers_with_urls_are_not_stored(foreign: str) -> None:
    body = image_body()
    body["layers"] = [
        layer(
            mediaType=foreign,
            urls=["https://example.com/base.tar.gz"],
            digest=str(compute_digest(b"1")),
        ),
        layer(mediaType=foreign, digest=str(compute_digest(b"2"))),
        layer(mediaType=foreign, urls=[], digest=str(compute_digest(b"3"))),
        layer(urls=["https://example.com/mirror"], digest=str(compute_digest(b"4"))),
    ]
    manifest = parse_manifest(None, canonical(body))
    assert len(manifest.blobs) == 5
    kept = [d.digest for d in stored_blobs(manifest)]
    assert kept == [
        manifest.blobs[0].digest,
        compute_digest(b"2"),
        compute_digest(b"3"),
        compute_digest(b"4"),
    ]


def test_parse_descriptor_directly() -> None:
    item = layer(annotations={"k": "v"})
    parsed = parse_descriptor(item, "blob")
    assert parsed.media_type == mt.OCI_LAYER_GZIP
    assert parsed.annotations == {"k": "v"}
    with pytest.raises(ManifestInvalid, match=r"^invalid manifest: blob must be an object$"):
        parse_descriptor(None, "blob")


# --- hostile values (issue 9) ------------------------------------------------------------------

MEDIA_TYPE_RULE = (
    "must be a media type such as application/vnd.oci.image.layer.v1.tar+gzip "
    "(type/subtype, each at most 127 characters of [A-Za-z0-9!#$&^_.+-])"
)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"schemaVersion": ' + b"9" * 5000 + b"}",  # int() refuses over 4,300 digits
        b'{"a": ' + b"1" * 4301 + b"}",
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"a": ' + b'{"b": ' * 50_000 + b"1" + b"}" * 50_001,
        b"\xff\xfe{}",
    ],
)
def test_hostile_json_is_manifest_invalid(raw: bytes) -> None:
    assert invalid(mt.OCI_MANIFEST, raw).startswith("body is not valid JSON")


def test_a_huge_integer_where_a_size_belongs_is_refused() -> None:
    body = image_body()
    body["layers"] = [layer(size=10**4299)]  # 4,300 digits: the most json.loads accepts
    assert invalid(None, body) == f"layers[0].{SIZE_RULE}"


@pytest.mark.parametrize("size", [2**63, 2**64, 10**4000])
def test_sizes_beyond_int64_are_refused(size: int) -> None:
    body = image_body()
    body["layers"] = [layer(size=size)]
    assert invalid(None, body) == f"layers[0].{SIZE_RULE}"


def test_the_largest_int64_size_is_accepted() -> None:
    body = image_body()
    body["layers"] = [layer(size=2**63 - 1)]
    assert parse_manifest(None, canonical(body)).blobs[1].size == 2**63 - 1


@pytest.mark.parametrize(
    "media_type",
    [
        "x",
        "a/",
        "/b",
        "a/b/c",
        "a/b;charset=utf-8",
        "a /b",
        "a/b\x00",
        "a\x00/b",
        "application/vnd.\u00e9",
        "-a/b",
        "a/" + "b" * 128,
        "a" * 128 + "/b",
    ],
)
def test_media_types_follow_the_image_spec_grammar(media_type: str) -> None:
    body = image_body()
    body["layers"] = [layer(mediaType=media_type)]
    assert invalid(None, body) == f"layers[0].mediaType {MEDIA_TYPE_RULE}"
    body = image_body(artifactType=media_type)
    assert invalid(None, body) == f"manifest.artifactType {MEDIA_TYPE_RULE}"
    body = image_body()
    body["config"] = layer(mediaType=media_type)
    assert invalid(None, body) == f"config.mediaType {MEDIA_TYPE_RULE}"


@pytest.mark.parametrize(
    "media_type",
    [
        "a/b",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.cncf.helm.config.v1+json",
        "A0!#$&^_.+-/z9!#$&^_.+-",
        "a" * 127 + "/" + "b" * 127,
    ],
)
def test_media_types_the_grammar_accepts(media_type: str) -> None:
    assert mt.is_media_type(media_type)
    body = image_body(artifactType=media_type)
    body["layers"] = [layer(mediaType=media_type, artifactType=media_type)]
    manifest = parse_manifest(None, canonical(body))
    assert manifest.artifact_type == media_type
    assert manifest.blobs[1].media_type == media_type


def test_references_at_the_limit_are_accepted_and_beyond_refused() -> None:
    body = image_body()
    body["layers"] = [layer(digest=str(compute_digest(str(i).encode()))) for i in range(4)]
    raw = canonical(body)
    assert len(parse_manifest(None, raw, max_references=5).blobs) == 5
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(None, raw, max_references=4)
    assert info.value.message == (
        "invalid manifest: 5 references, more than this registry's limit of 4 "
        "(server.max_manifest_references)"
    )
    assert info.value.detail == {"references": 5, "limit": 4}


def test_index_entries_count_against_the_limit() -> None:
    index = make_index()
    assert len(parse_manifest(None, index.manifest, max_references=2).children) == 2
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(None, index.manifest, max_references=1)
    assert info.value.detail == {"references": 2, "limit": 1}


def test_the_limit_is_checked_before_any_descriptor() -> None:
    body = image_body()
    body["layers"] = ["not a descriptor"] * 10
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(None, canonical(body), max_references=3)
    assert info.value.detail == {"references": 11, "limit": 3}
