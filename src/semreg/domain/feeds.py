"""Feeds: named registries inside one server. Pure: stdlib only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

FEED_TYPES: Final = frozenset({"docker"})


@dataclass(frozen=True, slots=True)
class Feed:
    id: int
    name: str
    feed_type: str
    active: bool
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedChanges:
    """A partial update: ``None`` keeps the current value."""

    active: bool | None = None
    description: str | None = None
