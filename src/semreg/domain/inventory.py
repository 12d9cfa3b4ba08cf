"""What a repository holds, as the metadata layer reports it. Pure: stdlib only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from semreg.domain.digest import Digest
from semreg.domain.feeds import Feed
from semreg.domain.names import RepoPath


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    feed: Feed
    path: RepoPath


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    digest: Digest
    media_type: str
    size: int
    artifact_type: str | None
    subject: Digest | None
    created_at: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ManifestHead:
    """What a manifest GET or HEAD answers with, besides the bytes."""

    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadPart:
    """One writer's contribution to an upload: its part name, the bytes of it that count, and
    whether the writer had finished (closed the part) when it was recorded."""

    name: str
    size: int
    closed: bool = True


@dataclass(frozen=True, slots=True)
class UploadSession:
    id: str
    repository_id: int
    size: int
    created_at: datetime
    version: int = 0
    """Bumped by every change; writers compare-and-set on it."""


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A live release of a versioned repository, as listed by the releases API."""

    tag: str
    digest: Digest
    size: int
    pushed_at: datetime
    virtual_tags: tuple[str, ...] = ()
