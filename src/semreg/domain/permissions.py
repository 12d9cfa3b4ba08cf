"""Principals and what they may do, modelled on ProGet's permissions. Pure: stdlib only.

- Feed permissions: ``view`` (pull), ``add`` (push), ``promote``, ``delete`` (which also covers
  overwriting a release tag, ProGet's "Overwrite/Delete").
- System APIs: ``full-control`` (everything) and ``feeds`` (create, update and delete feeds).
- A principal holds feed permissions per feed name, or for every feed (key ``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from semreg.domain.errors import RequestInvalid


class Permission(StrEnum):
    VIEW = "view"
    ADD = "add"
    PROMOTE = "promote"
    DELETE = "delete"


class SystemApi(StrEnum):
    FULL_CONTROL = "full-control"
    FEEDS = "feeds"


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    KEY = "key"


# Docker scope actions and the feed permission each needs.
ACTION_PERMISSION: Final[Mapping[str, Permission]] = {
    "pull": Permission.VIEW,
    "push": Permission.ADD,
    "delete": Permission.DELETE,
}
ALL_FEEDS: Final = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user, an API key, or nobody (anonymous)."""

    kind: PrincipalKind
    id: int | None
    name: str
    system_apis: frozenset[SystemApi] = frozenset()
    feed_permissions: Mapping[str | None, frozenset[Permission]] = field(default_factory=dict)
    anonymous_feeds: frozenset[str] = frozenset()
    """Feeds that allow anonymous view: everyone, authenticated or not, may pull from them."""
    nonce: str = ""
    """What only this key or user has (random, set at creation); tokens carry it."""

    @property
    def is_admin(self) -> bool:
        return SystemApi.FULL_CONTROL in self.system_apis

    @property
    def is_anonymous(self) -> bool:
        return self.kind is PrincipalKind.ANONYMOUS

    def may_manage_feeds(self) -> bool:
        return self.is_admin or SystemApi.FEEDS in self.system_apis

    def may(self, feed: str, permission: Permission) -> bool:
        """True when the principal holds ``permission`` on ``feed``."""
        if self.is_admin:
            return True
        if permission is Permission.VIEW and feed in self.anonymous_feeds:
            return True
        granted = self.feed_permissions.get(feed, frozenset()) | self.feed_permissions.get(
            ALL_FEEDS, frozenset()
        )
        return permission in granted

    def viewable_feeds(self) -> frozenset[str] | None:
        """Feeds this principal may view; None means every feed."""
        if self.is_admin or Permission.VIEW in self.feed_permissions.get(ALL_FEEDS, frozenset()):
            return None
        named = {
            f for f, p in self.feed_permissions.items() if f is not None and Permission.VIEW in p
        }
        return frozenset(named) | self.anonymous_feeds

    def allowed_actions(self, feed: str, actions: Iterable[str]) -> list[str]:
        """The Docker scope actions among ``actions`` this principal may perform on ``feed``."""
        out = []
        for action in actions:
            permission = ACTION_PERMISSION.get(action)
            if permission is not None and self.may(feed, permission):
                out.append(action)
        return out

    def with_anonymous_feeds(self, feeds: Iterable[str]) -> Principal:
        return Principal(
            self.kind,
            self.id,
            self.name,
            self.system_apis,
            self.feed_permissions,
            frozenset(feeds),
            self.nonce,
        )


def anonymous(feeds: Iterable[str] = ()) -> Principal:
    return Principal(PrincipalKind.ANONYMOUS, None, "anonymous", anonymous_feeds=frozenset(feeds))


def parse_permissions(values: Iterable[str]) -> frozenset[Permission]:
    """Feed permissions from their names.

    Raises:
        RequestInvalid: an unknown permission name.
    """
    out = set()
    for value in values:
        try:
            out.add(Permission(value.lower()))
        except ValueError:
            raise RequestInvalid(
                f"unknown permission {value!r}: use view, add, promote or delete",
                {"permission": value},
            ) from None
    return frozenset(out)


def parse_system_apis(values: Iterable[str]) -> frozenset[SystemApi]:
    """System API grants from their names.

    Raises:
        RequestInvalid: an unknown system API name.
    """
    out = set()
    for value in values:
        try:
            out.add(SystemApi(value.lower()))
        except ValueError:
            raise RequestInvalid(
                f"unknown system API {value!r}: use full-control or feeds", {"systemApi": value}
            ) from None
    return frozenset(out)
