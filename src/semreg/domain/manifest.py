"""Manifest parsing: validate a pushed manifest and list what it references. Pure: stdlib only.

The bytes are never re-serialized: the digest is of the bytes as pushed. Everything in them is
hostile until checked here: a JSON integer of more than 4,300 digits or nesting deeper than the
interpreter's recursion limit is refused as ``ManifestInvalid`` (``json.loads`` raises
``ValueError`` and ``RecursionError``), sizes must fit the int64 of the image spec, media types
and artifact types must follow its grammar (so they fit their 255-character column and hold no
NUL, which PostgreSQL refuses), and a manifest may list at most ``max_references`` descriptors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from semreg.domain import mediatypes as mt
from semreg.domain.digest import Digest, compute_digest, parse_digest
from semreg.domain.errors import DigestInvalid, ManifestInvalid

# image-spec descriptor.md: "size ... int64"; also the range of the BIGINT columns.
MAX_SIZE: Final = 2**63 - 1
# Descriptors (config and layers, or an index's manifests) one manifest may list by default;
# each is a query parameter of the reference check (PostgreSQL allows 32,767 per statement).
DEFAULT_MAX_REFERENCES: Final = 4096
JsonObject = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: its identity, what it needs and what it describes."""

    media_type: str
    digest: Digest
    size: int
    blobs: tuple[Descriptor, ...]
    """Config and layers that must exist in the repository."""
    children: tuple[Descriptor, ...]
    """Manifests an index points at; they must exist in the repository."""
    subject: Descriptor | None
    artifact_type: str | None
    """``artifactType``, else the config media type of an image manifest (for referrers)."""
    annotations: Mapping[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


def _fail(message: str) -> ManifestInvalid:
    return ManifestInvalid(f"invalid manifest: {message}")


def _annotations(value: object, where: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(f"{where}.annotations must be an object of strings")
    return dict(value)


def _media_type(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"{where} must be a non-empty string")
    if not mt.is_media_type(value):
        raise _fail(
            f"{where} must be a media type such as application/vnd.oci.image.layer.v1.tar+gzip "
            "(type/subtype, each at most 127 characters of [A-Za-z0-9!#$&^_.+-])"
        )
    return value


def _optional_media_type(obj: JsonObject, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where}.{key} must be a string")
    return _media_type(value, f"{where}.{key}")


def parse_descriptor(value: object, where: str) -> Descriptor:
    """Validate one descriptor (``mediaType``, ``digest``, ``size``...).

    Raises:
        ManifestInvalid: a field is missing or of the wrong type, or the digest is malformed.
    """
    if not isinstance(value, dict):
        raise _fail(f"{where} must be an object")
    media_type = _media_type(value.get("mediaType"), f"{where}.mediaType")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise _fail(f"{where}.size must be a non-negative integer of at most {MAX_SIZE}")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise _fail(f"{where}.digest must be a string")
    try:
        digest = parse_digest(raw_digest)
    except DigestInvalid as exc:
        raise _fail(f"{where}.digest: {exc.message}") from exc
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _fail(f"{where}.urls must be an array of strings")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=_optional_media_type(value, "artifactType", where),
        annotations=_annotations(value.get("annotations"), where),
        urls=tuple(urls),
    )


def _array(body: JsonObject, key: str) -> list[object]:
    items = body.get(key)
    if not isinstance(items, list):
        raise _fail(f"{key} must be an array")
    return items


def _descriptor_list(items: list[object], key: str) -> tuple[Descriptor, ...]:
    return tuple(parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(items))


def _check_references(count: int, limit: int) -> None:
    # Before any descriptor is parsed: a refused manifest costs no more than its JSON.
    if count > limit:
        raise ManifestInvalid(
            f"invalid manifest: {count} references, more than this registry's limit of {limit} "
            "(server.max_manifest_references)",
            {"references": count, "limit": limit},
        )


def _resolve_media_type(content_type: str | None, body: JsonObject) -> str:
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _fail("mediaType must be a string")
    header = (content_type or "").split(";", 1)[0].strip() or None
    if declared in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or header in (
        mt.DOCKER_SCHEMA1,
        mt.DOCKER_SCHEMA1_SIGNED,
    ):
        raise _fail("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if declared and header and declared != header:
        raise _fail(
            f"Content-Type {header[:100]!r} does not match the manifest's mediaType "
            f"{declared[:100]!r}"
        )
    media_type = declared or header
    if media_type is None:
        raise _fail("no mediaType in the body and no Content-Type header")
    if media_type not in mt.MANIFESTS:
        raise _fail(
            f"unsupported manifest media type {media_type[:100]!r}; expected one of "
            + ", ".join(sorted(mt.MANIFESTS))
        )
    return media_type


def _load_json(body: bytes) -> JsonObject:
    try:
        data = json.loads(body)
    # ValueError: JSONDecodeError, UnicodeDecodeError and integers over 4,300 digits.
    except (ValueError, RecursionError) as exc:
        raise _fail(f"body is not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise _fail("body must be a JSON object")
    return data


def parse_manifest(
    content_type: str | None,
    body: bytes,
    algorithm: str = "sha256",
    max_references: int = DEFAULT_MAX_REFERENCES,
) -> Manifest:
    """Validate a manifest as pushed and compute its digest.

    Raises:
        ManifestInvalid: bad JSON, unknown or mismatched media type, malformed fields, or more
            than ``max_references`` descriptors.
    """
    data = _load_json(body)
    media_type = _resolve_media_type(content_type, data)
    version = data.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _fail("schemaVersion must be 2")
    subject = data.get("subject")
    artifact_type = _optional_media_type(data, "artifactType", "manifest")
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    if media_type in mt.INDEXES:
        entries = _array(data, "manifests")
        _check_references(len(entries), max_references)
        children = _descriptor_list(entries, "manifests")
    else:
        entries = _array(data, "layers")
        _check_references(len(entries) + 1, max_references)  # the config is one too
        config = parse_descriptor(data.get("config"), "config")
        layers = _descriptor_list(entries, "layers")
        blobs = (config, *layers)
        if artifact_type is None:
            # distribution-spec referrers: fall back to the config media type
            artifact_type = config.media_type
    return Manifest(
        media_type=media_type,
        digest=compute_digest(body, algorithm),
        size=len(body),
        blobs=blobs,
        children=children,
        subject=parse_descriptor(subject, "subject") if subject is not None else None,
        artifact_type=artifact_type,
        annotations=_annotations(data.get("annotations"), "manifest"),
    )


def stored_blobs(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The blobs that must be present in the registry (non-distributable layers live elsewhere)."""
    return tuple(d for d in manifest.blobs if not (d.media_type in mt.NON_DISTRIBUTABLE and d.urls))
