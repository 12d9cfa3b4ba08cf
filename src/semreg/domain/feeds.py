"""Feeds: named registries inside one server. Pure: stdlib only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from semreg.domain.tags import TagPolicy

FEED_TYPES: Final = frozenset({"docker"})


@dataclass(frozen=True, slots=True)
class Feed:
    id: int
    name: str
    feed_type: str
    active: bool
    description: str | None
    created_at: datetime
    policy: TagPolicy = field(default_factory=TagPolicy)
    anonymous_view: bool = False


@dataclass(frozen=True, slots=True)
class FeedChanges:
    """A partial update: ``None`` keeps the current value."""

    active: bool | None = None
    description: str | None = None
    container_versioning: bool | None = None
    permitted_tags: tuple[str, ...] | None = None
    anonymous_view: bool | None = None
