"""Container Versioning rules: which tags a feed accepts, and the virtual tags it maintains.

- ``check_tag_write`` is the one decision on every tag write (client push, promotion, retag,
  replication): release tags only, permitted tags, immutable releases, managed virtual tags.
- ``glob_matches`` decides a permitted-tag pattern without a regex: ``*`` is the only wildcard,
  so anchoring the first and last literal parts and finding each middle part leftmost with
  ``str.find`` is exact (a leftmost match never leaves less room for the parts after it) and
  never backtracks: at most ``len(tag) * len(pattern)`` character comparisons, both at most 128,
  so it needs no thread of its own. A regex ``.*`` per ``*`` backtracked exponentially
  (``*a*a*a*a*a*a*a*b`` against 64 characters blocked the server 9.6 s).
- ``virtual_tags`` computes ``latest``, ``N`` and ``N.M`` for a set of releases;
  ``affected_virtual_tags`` says which of them one added or removed release can change, so a push
  re-evaluates three tags with indexed queries instead of rescanning every release.

Pure: stdlib only (and ``semreg.domain``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.errors import DigestInvalid, ReleaseImmutable, RequestInvalid, TagInvalid
from semreg.domain.names import Tag
from semreg.domain.semver import Version, find_version, suggest_version

LATEST: Final = "latest"
_VIRTUAL: Final = re.compile(r"^(?:latest|(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?)$")
# Tags older signing clients use instead of the referrers API (cosign, notation fallbacks).
_FALLBACK: Final = re.compile(r"^(sha256|sha512)-([a-f0-9]+)(?:\.(?:sig|att|sbom))?$")
_PATTERN: Final = re.compile(r"^!?[A-Za-z0-9_.*-]{1,128}$")


class TagOrigin(StrEnum):
    """Where a tag write comes from; replication is exempt from the versioning rules."""

    PUSH = "push"
    PROMOTION = "promotion"
    RETAG = "retag"
    REPLICATION = "replication"


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """A feed's Container Versioning settings."""

    versioning: bool = False
    permitted: tuple[str, ...] = ()

    def permits(self, tag: str) -> bool:
        """True when ``tag`` matches a permitted pattern and no ``!`` negation."""
        positive = [p for p in self.permitted if not p.startswith("!")]
        negative = [p[1:] for p in self.permitted if p.startswith("!")]
        return any(glob_matches(p, tag) for p in positive) and not any(
            glob_matches(p, tag) for p in negative
        )


def glob_matches(pattern: str, text: str) -> bool:
    """True when ``text`` matches ``pattern``, whose only wildcard is ``*`` (any run, even empty).

    Every other character is literal. No backtracking: see the module docstring.
    """
    first, *rest = pattern.split("*")
    if not rest:
        return text == pattern
    *middle, last = rest
    # The anchored ends must not overlap: "a*a" needs at least two characters.
    if len(text) < len(first) + len(last) or not (text.startswith(first) and text.endswith(last)):
        return False
    position, end = len(first), len(text) - len(last)
    for part in middle:
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def parse_permitted_tags(patterns: Iterable[str]) -> tuple[str, ...]:
    """Validate permitted-tag patterns (tag characters, ``*`` wildcards, leading ``!``).

    Raises:
        RequestInvalid: a pattern is empty or has characters no tag can hold.
    """
    out: list[str] = []
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern) or pattern in ("!",):
            raise RequestInvalid(
                f"invalid permitted tag {pattern[:140]!r}: use tag characters [A-Za-z0-9_.-], "
                "'*' as a wildcard and a leading '!' to exclude",
                {"pattern": pattern[:140]},
            )
        out.append(pattern)
    return tuple(dict.fromkeys(out))


def is_virtual_tag(tag: str) -> bool:
    """``latest``, ``N`` or ``N.M``: names the registry manages on a versioned feed."""
    return _VIRTUAL.fullmatch(tag) is not None


def fallback_subject(tag: str) -> Digest | None:
    """The manifest a ``sha256-<hex>[.sig|.att|.sbom]`` tag refers to, if it is one."""
    match = _FALLBACK.fullmatch(tag)
    if match is None:
        return None
    try:
        return parse_digest(f"{match.group(1)}:{match.group(2)}")
    except DigestInvalid:
        return None


@dataclass(frozen=True, slots=True)
class TagWrite:
    """One requested tag write and the facts the decision needs."""

    tag: Tag
    digest: Digest
    origin: TagOrigin = TagOrigin.PUSH
    release_digest: Digest | None = None
    """The digest the release tag points at now, or had before it was deleted (reserved)."""
    fallback_subject_exists: bool = False
    force: bool = False
    """An explicit overwrite by a principal allowed to overwrite releases."""


def check_tag_write(feed: str, policy: TagPolicy, write: TagWrite) -> Version | None:
    """Decide a tag write; returns the release version when the tag is a release tag.

    Raises:
        TagInvalid: the feed's versioning rules refuse the tag.
        ReleaseImmutable: the release already points at another digest.
    """
    version = find_version(write.tag.name)
    if not policy.versioning or write.origin is TagOrigin.REPLICATION:
        return version if policy.versioning else None
    name = write.tag.name
    if is_virtual_tag(name):
        raise TagInvalid(
            f"tag {name!r} is managed by semreg in feed {feed!r} (Container Versioning): "
            f"'latest', 'N' and 'N.M' always point at the highest matching release; push a full "
            f"version such as {_example(name)} instead",
            {"tag": name, "reason": "virtual"},
        )
    if version is not None:
        _check_immutable(name, write)
        return version
    subject = fallback_subject(name)
    if subject is not None:
        if write.fallback_subject_exists:
            return None
        raise TagInvalid(
            f"tag {name!r} names manifest {subject}, which is not in this repository; "
            "push the signed image first (or use the referrers API)",
            {"tag": name, "reason": "fallback-subject-unknown"},
        )
    if policy.permits(name):
        return None
    raise TagInvalid(_refusal(feed, policy, name), {"tag": name, "reason": "not-a-release"})


def _check_immutable(name: str, write: TagWrite) -> None:
    if write.release_digest is None or write.release_digest == write.digest or write.force:
        return
    raise ReleaseImmutable(
        f"release {name} already points at {write.release_digest}; releases are immutable. "
        f"Publish a new version instead (or overwrite explicitly with force, which needs the "
        f"Overwrite/Delete permission)",
        {"tag": name, "digest": str(write.release_digest)},
    )


def _example(name: str) -> str:
    parts = name.split(".") if name != LATEST else ["1"]
    while len(parts) < 3:
        parts.append("0")
    return ".".join(parts)


def _refusal(feed: str, policy: TagPolicy, name: str) -> str:
    message = (
        f"tag {name!r} is not allowed in feed {feed!r}: with Container Versioning only "
        "MAJOR.MINOR.PATCH[-PRERELEASE] tags are accepted (e.g. 3.4.1, 2.4.1-beta.1)"
    )
    if policy.permitted:
        message += " or the permitted tags " + ", ".join(policy.permitted)
    suggestion = suggest_version(name)
    if suggestion is not None:
        message += f"; did you mean {suggestion}?"
    return message


# --- virtual tags ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VirtualTag:
    """A managed tag and the releases it selects from."""

    name: str
    major: int | None = None
    minor: int | None = None

    @property
    def falls_back_to_prerelease(self) -> bool:
        """Only ``latest`` points at a pre-release, and only while no stable release exists."""
        return self.major is None

    def selects(self, version: Version) -> bool:
        if self.major is not None and version.major != self.major:
            return False
        return self.minor is None or version.minor == self.minor


def affected_virtual_tags(version: Version) -> tuple[VirtualTag, ...]:
    """The virtual tags whose target can change when ``version`` is added or removed."""
    latest = VirtualTag(LATEST)
    if not version.is_stable:
        return (latest,)
    return (
        latest,
        VirtualTag(str(version.major), version.major),
        VirtualTag(f"{version.major}.{version.minor}", version.major, version.minor),
    )


def select_target(tag: VirtualTag, versions: Iterable[Version]) -> Version | None:
    """The release ``tag`` points at among ``versions`` (the reference semantics)."""
    candidates = [v for v in versions if tag.selects(v)]
    stable = [v for v in candidates if v.is_stable]
    if stable:
        return max(stable)
    if tag.falls_back_to_prerelease and candidates:
        return max(candidates)
    return None


def virtual_tags(versions: Iterable[Version]) -> Mapping[str, Version]:
    """Every virtual tag of a repository holding ``versions``: name -> release."""
    releases = set(versions)
    names: dict[str, VirtualTag] = {}
    for version in releases:
        for tag in affected_virtual_tags(version):
            names[tag.name] = tag
    targets = {name: select_target(tag, releases) for name, tag in names.items()}
    return {name: target for name, target in targets.items() if target is not None}
