"""Benchmark content made on the fly: large blobs streamed from a generator, small manifests.

A large blob is one random block repeated up to its size, so the client never holds more than
that block (8 MiB) however large the blob is; its digest is computed beforehand in a streaming
pass over the same bytes. Every ``BlobSource`` has its own random block, so no two pushes send
the same blob.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Final

from tests.factories import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, make_layer

MiB: Final = 1024 * 1024
BLOCK: Final = 8 * MiB
PIECE: Final = 1 * MiB


class BlobSource:
    """``size`` bytes made of one repeated random block, read as a stream of pieces."""

    def __init__(self, size: int, piece: int = PIECE) -> None:
        self.size = size
        self.piece = piece
        self.block = os.urandom(min(BLOCK, max(size, 1)))
        self._digest: str | None = None

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in pieces of at most ``piece`` bytes."""
        end = self.size if end is None else end
        block = self.block
        offset = start
        while offset < end:
            at = offset % len(block)
            length = min(self.piece, len(block) - at, end - offset)
            yield block[at : at + length]
            offset += length

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the whole blob (one streaming pass, computed once)."""
        if self._digest is None:
            hasher = hashlib.sha256()
            for piece in self.pieces():
                hasher.update(piece)
            self._digest = f"sha256:{hasher.hexdigest()}"
        return self._digest


def manifest_blobs(seed: str) -> tuple[bytes, bytes]:
    """A small config and layer blob that every benchmark manifest references."""
    layer = make_layer(seed, 4096)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Labels": {"seed": seed}},
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return config, layer


def manifest(config: bytes, layer: bytes, number: int) -> bytes:
    """A distinct small OCI image manifest (an annotation carries ``number``)."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
        "annotations": {"org.example.bench.number": str(number)},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
