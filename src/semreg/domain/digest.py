"""Digest value type: parse, format and hash. Pure: stdlib only.

The grammar follows the OCI image spec (``algorithm ":" encoded``); of the registered algorithms
``sha256`` (64 hex) and ``sha512`` (128 hex) are implemented, anything else well-formed is refused
as unsupported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Protocol

from semreg.domain.errors import DigestInvalid, DigestUnsupported

# image-spec descriptor.md: algorithm-component(([+._-])algorithm-component)* ":" [a-zA-Z0-9=_-]+
_GRAMMAR: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
HEX_LENGTH: Final = {"sha256": 64, "sha512": 128}
_HEX: Final = re.compile(r"^[a-f0-9]+$")
DEFAULT_ALGORITHM: Final = "sha256"


class Hasher(Protocol):
    """The part of ``hashlib`` objects this project uses."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(text: str) -> Digest:
    """Parse ``sha256:<hex>`` or ``sha512:<hex>``.

    Raises:
        DigestInvalid: not a digest, or the encoded part is wrong for its algorithm.
        DigestUnsupported: a well-formed digest of an algorithm other than sha256/sha512.
    """
    if len(text) > 256 or not _GRAMMAR.fullmatch(text):
        raise DigestInvalid(f"invalid digest {text[:80]!r}: expected <algorithm>:<hex>")
    algorithm, encoded = text.split(":", 1)
    length = HEX_LENGTH.get(algorithm)
    if length is None:
        raise DigestUnsupported(
            f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512",
            {"algorithm": algorithm},
        )
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise DigestInvalid(
            f"invalid {algorithm} digest: expected {length} lower-case hex characters"
        )
    return Digest(algorithm, encoded)


def format_digest(digest: Digest) -> str:
    return str(digest)


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    """A fresh hasher for one of the implemented algorithms."""
    return hashlib.new(algorithm)


def compute_digest(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return Digest(algorithm, hasher.hexdigest())
