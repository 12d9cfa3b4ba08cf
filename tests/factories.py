"""Test data made on the fly: images, indexes, artifacts and OCI layouts on disk."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def canonical(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def make_layer(seed: str, size: int = 2048) -> bytes:
    """A gzipped tar with one file of pseudo-random content derived from ``seed``."""
    content = hashlib.shake_256(seed.encode()).digest(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"data/{seed}.bin")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Image:
    """A manifest (or index) and every blob and child manifest it needs."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[Image] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    def all_blobs(self) -> dict[str, bytes]:
        found = dict(self.blobs)
        for child in self.children:
            found.update(child.all_blobs())
        return found


def make_image(
    layers: int = 2,
    seed: str = "img",
    docker: bool = False,
    platform: tuple[str, str] = ("linux", "amd64"),
    layer_size: int = 2048,
) -> Image:
    layer_blobs = [make_layer(f"{seed}-{i}", layer_size) for i in range(layers)]
    config = canonical(
        {
            "architecture": platform[1],
            "os": platform[0],
            "rootfs": {
                "type": "layers",
                "diff_ids": [digest_of(gzip.decompress(b)) for b in layer_blobs],
            },
            "config": {"Labels": {"seed": seed}},
        }
    )
    config_type, layer_type, manifest_type = (
        (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST)
        if docker
        else (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST)
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, config),
            "layers": [descriptor(layer_type, b) for b in layer_blobs],
        }
    )
    blobs = {digest_of(config): config} | {digest_of(b): b for b in layer_blobs}
    return Image(manifest, manifest_type, blobs)


def make_index(seed: str = "multi", docker: bool = False) -> Image:
    platforms = [("linux", "amd64"), ("linux", "arm64")]
    children = [make_image(2, f"{seed}-{arch}", docker, (os_, arch)) for os_, arch in platforms]
    media_type = DOCKER_LIST if docker else OCI_INDEX
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                descriptor(
                    child.media_type, child.manifest, platform={"os": p[0], "architecture": p[1]}
                )
                for child, p in zip(children, platforms, strict=True)
            ],
        }
    )
    return Image(manifest, media_type, {}, children)


def make_artifact(artifact_type: str, payload: bytes, subject: Image | None = None) -> Image:
    empty = b"{}"
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, empty),
        "layers": [descriptor("application/octet-stream", payload)],
        "annotations": {"org.example.kind": "test"},
    }
    if subject is not None:
        body["subject"] = descriptor(subject.media_type, subject.manifest)
    return Image(
        canonical(body), OCI_MANIFEST, {digest_of(empty): empty, digest_of(payload): payload}
    )


def write_oci_layout(root: Path, images: dict[str, Image]) -> Path:
    """An OCI image layout holding ``images`` by tag (``index.json`` annotations)."""
    blobs_dir = root / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def put(data: bytes) -> None:
        path = blobs_dir / digest_of(data).split(":", 1)[1]
        path.write_bytes(data)

    def put_image(image: Image) -> None:
        put(image.manifest)
        for data in image.blobs.values():
            put(data)
        for child in image.children:
            put_image(child)

    entries = []
    for tag, image in images.items():
        put_image(image)
        entries.append(
            descriptor(
                image.media_type,
                image.manifest,
                annotations={"org.opencontainers.image.ref.name": tag},
            )
        )
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return root


def read_oci_layout(root: Path) -> dict[str, bytes]:
    """Every blob of a layout by digest (manifests included)."""
    out = {}
    for path in (root / "blobs" / "sha256").iterdir():
        out[f"sha256:{path.name}"] = path.read_bytes()
    return out


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
