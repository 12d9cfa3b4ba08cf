"""Repository names, feeds and references, validated against the distribution-spec grammar.

A name is ``<feed>/<repository>``: the first component is the feed, the rest (one or more
components) the repository inside it. Pure: stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.errors import NameInvalid, RequestInvalid, TagInvalid

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT: Final = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_COMPONENT_RE: Final = re.compile(_COMPONENT)
_NAME_RE: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# distribution-spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
_TAG_RE: Final = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH: Final = 255
MAX_FEED_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class RepoPath:
    """A repository inside a feed: ``feed="apps"``, ``repo="myorg/app"``."""

    feed: str
    repo: str

    def __str__(self) -> str:
        return f"{self.feed}/{self.repo}"


@dataclass(frozen=True, slots=True, order=True)
class Tag:
    name: str

    def __str__(self) -> str:
        return self.name


Reference = Tag | Digest


def _explain_bad_name(name: str) -> str:
    if not name:
        return "the name is empty"
    if name.startswith("/"):
        return "the name must not start with '/'"
    if "//" in name or name.endswith("/"):
        return "the name has an empty path component"
    if ".." in name.split("/") or "%" in name:
        return "path traversal and escaped characters are not allowed"
    if name.lower() != name:
        return "names must be lower-case"
    return "each component must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"


def parse_name(name: str) -> str:
    """Validate a full repository name (``feed/repo...``) against the spec grammar.

    Raises:
        NameInvalid: the name breaks the grammar or is longer than 255 characters.
    """
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(
            f"invalid repository name: longer than {MAX_NAME_LENGTH} characters",
            {"length": len(name)},
        )
    if not _NAME_RE.fullmatch(name):
        reason = _explain_bad_name(name)
        raise NameInvalid(f"invalid repository name {name[:100]!r}: {reason}", {"name": name[:255]})
    return name


def parse_repo_path(name: str) -> RepoPath:
    """Split ``feed/repo...`` into its feed and repository.

    Raises:
        NameInvalid: the name is invalid or has no repository after the feed.
    """
    parse_name(name)
    feed, sep, repo = name.partition("/")
    if not sep:
        raise NameInvalid(
            f"invalid repository name {name!r}: expected <feed>/<repository>, e.g. {name}/app",
            {"name": name},
        )
    return RepoPath(feed, repo)


def is_feed_name(name: str) -> bool:
    """True for a valid feed (or user) name; lookups use it so other text never reaches SQL."""
    return len(name) <= MAX_FEED_LENGTH and _COMPONENT_RE.fullmatch(name) is not None


def parse_feed_name(name: str, kind: str = "feed name") -> str:
    """Validate a feed (or user) name: one lower-case name component, at most 64 characters.

    Raises:
        RequestInvalid: the name is not a valid single component.
    """
    if not is_feed_name(name):
        raise RequestInvalid(
            f"invalid {kind} {name[:80]!r}: use lower-case letters, digits and single "
            f"'.', '_' or '-' separators, at most {MAX_FEED_LENGTH} characters",
            {"name": name[:80]},
        )
    return name


def parse_tag(text: str) -> Tag:
    """Validate a tag against ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.

    Raises:
        TagInvalid: the tag breaks the grammar.
    """
    if not _TAG_RE.fullmatch(text):
        raise TagInvalid(
            f"invalid tag {text[:140]!r}: tags are 1-128 characters of [A-Za-z0-9_.-] "
            "and must not start with '.' or '-'",
            {"tag": text[:140]},
        )
    return Tag(text)


def parse_reference(text: str) -> Reference:
    """A manifest reference: a digest when it contains ':', else a tag.

    Raises:
        DigestInvalid: looks like a digest but is not a valid one.
        TagInvalid: not a valid tag.
    """
    if ":" in text:
        return parse_digest(text)
    return parse_tag(text)
