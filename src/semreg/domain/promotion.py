"""Promotion planning: what a target repository lacks of an image. Pure: stdlib only.

An image is a manifest and, for an index, its child manifests; each references blobs. Promotion
copies rows and blob links, never bytes: blobs are content-addressed and shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime

from semreg.domain.digest import Digest
from semreg.domain.inventory import StoredManifest


@dataclass(frozen=True, slots=True)
class ImageNode:
    manifest: StoredManifest
    refs: tuple[tuple[Digest, str], ...]
    """(digest, "blob" | "manifest") of everything the manifest points at."""

    @property
    def children(self) -> tuple[Digest, ...]:
        return tuple(d for d, kind in self.refs if kind == "manifest")

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return tuple(d for d, kind in self.refs if kind == "blob")


@dataclass(frozen=True, slots=True)
class PromotionPlan:
    manifests: tuple[ImageNode, ...]
    """Manifests the target lacks, children before their index."""
    blobs: tuple[Digest, ...]
    """Every blob of the image, to link into the target (linking is idempotent)."""


def plan_promotion(
    root: Digest, nodes: Mapping[Digest, ImageNode], present: Set[Digest]
) -> PromotionPlan:
    """Order the image's manifests children-first, leaving out those the target holds."""
    ordered: list[ImageNode] = []
    seen: set[Digest] = set()

    def visit(digest: Digest) -> None:
        if digest in seen or digest not in nodes:
            return
        seen.add(digest)
        for child in nodes[digest].children:
            visit(child)
        ordered.append(nodes[digest])

    visit(root)
    blobs = sorted({b for node in ordered for b in node.blobs})
    missing = tuple(n for n in ordered if n.manifest.digest not in present)
    return PromotionPlan(missing, tuple(blobs))


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    id: int
    from_feed: str
    to_feed: str
    repository: str
    version: str
    to_version: str
    digest: Digest
    comments: str | None
    actor: str
    promoted_at: datetime


@dataclass(frozen=True, slots=True)
class TagChange:
    tag: str
    old_digest: Digest | None
    new_digest: Digest | None
    action: str
    actor: str
    at: datetime
