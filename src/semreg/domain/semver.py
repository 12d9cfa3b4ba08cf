"""Release versions: SemVer 2.0.0 ``MAJOR.MINOR.PATCH[-PRERELEASE]`` as container tags.

Parsing uses the ``semver`` package (strict SemVer 2.0.0 grammar: no leading zeros, no empty
identifiers). Tags cannot hold ``+``, so build metadata never occurs. Ordering is SemVer
precedence, expressed as ``sort_key``: a string whose byte order *is* that precedence, so the
database can find the highest release with an index instead of loading every release.
Pure: stdlib and ``semver`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Final

import semver

from semreg.domain.errors import TagInvalid

# Separates pre-release identifiers in sort keys: below every identifier character.
_ID_SEPARATOR: Final = "!"
# After the patch number: a release ("~") sorts above any pre-release ("-...") of it.
_RELEASE_MARK: Final = "~"
_PRERELEASE_MARK: Final = "-"
_V_PREFIX: Final = re.compile(r"^[vV]([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)$")
# A version is a tag: at most 128 characters. Bounded before the semver package runs its regex
# and ``int()`` (quadratic in the digits below 4,300, ValueError above) on client text.
_MAX_LENGTH: Final = 128


def _number_key(value: int) -> str:
    """Order-preserving text for an unbounded non-negative integer: length, then digits."""
    digits = str(value)
    return f"{len(digits):03d}{digits}"


def _identifier_key(identifier: str) -> str:
    # semver.org 11.4: numeric identifiers compare numerically and below alphanumeric ones.
    if identifier.isdigit():
        return "0" + _number_key(int(identifier))
    return "1" + identifier


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A release version, ordered by SemVer 2.0.0 precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    sort_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = ".".join(_number_key(n) for n in (self.major, self.minor, self.patch))
        if self.prerelease:
            ids = _ID_SEPARATOR.join(_identifier_key(i) for i in self.prerelease)
            key += _PRERELEASE_MARK + ids
        else:
            key += _RELEASE_MARK
        object.__setattr__(self, "sort_key", key)

    @property
    def is_stable(self) -> bool:
        return not self.prerelease

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __str__(self) -> str:
        return format_version(self)


def parse_version(text: str) -> Version:
    """Parse a three-part SemVer 2.0.0 version without build metadata.

    Raises:
        TagInvalid: ``text`` is not such a version.
    """
    if len(text) > _MAX_LENGTH:
        raise TagInvalid(f"{text[:40]!r}... is not a SemVer version: longer than a tag can be")
    try:
        parsed = semver.Version.parse(text)
    except (ValueError, TypeError) as exc:
        raise TagInvalid(f"{text[:140]!r} is not a SemVer version") from exc
    if parsed.build is not None:
        raise TagInvalid(f"{text[:140]!r} has build metadata, which tags cannot carry")
    prerelease = tuple(parsed.prerelease.split(".")) if parsed.prerelease else ()
    return Version(parsed.major, parsed.minor, parsed.patch, prerelease)


def find_version(text: str) -> Version | None:
    """The version a tag names, or None when it is not a release tag."""
    try:
        return parse_version(text)
    except TagInvalid:
        return None


def format_version(version: Version) -> str:
    text = f"{version.major}.{version.minor}.{version.patch}"
    if version.prerelease:
        text += "-" + ".".join(version.prerelease)
    return text


def suggest_version(text: str) -> str | None:
    """A release tag the user probably meant (``v1.2.3`` -> ``1.2.3``), if any."""
    match = _V_PREFIX.fullmatch(text)
    if match and find_version(match.group(1)) is not None:
        return match.group(1)
    return None
