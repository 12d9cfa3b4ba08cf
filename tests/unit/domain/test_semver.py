"""SemVer 2.0.0 release versions: grammar, round trip and precedence against semver.org itself.

``spec_compare`` below is an independent reading of semver.org section 11, written for these tests
only; ``Version`` (and its ``sort_key``, the order the database uses) must agree with it.
"""

from __future__ import annotations

import re
from functools import cmp_to_key
from itertools import pairwise

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from semreg.domain.errors import ErrorCode, TagInvalid
from semreg.domain.semver import (
    Version,
    find_version,
    format_version,
    parse_version,
    suggest_version,
)

# --- an independent reference: semver.org ----------------------------------------------------

# semver.org's "suggested regular expression", without the build-metadata group.
SEMVER_ORG = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?",
    re.ASCII,
)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _is_numeric(identifier: str) -> bool:
    return identifier != "" and all(c in "0123456789" for c in identifier)


def spec_compare(a: str, b: str) -> int:
    """semver.org 11: -1, 0 or 1 as version text ``a`` has lower, equal or higher precedence."""
    core_a, _, pre_a = a.partition("-")
    core_b, _, pre_b = b.partition("-")
    # 11.2: major, minor, patch compared numerically, left to right.
    for x, y in zip(core_a.split("."), core_b.split("."), strict=True):
        if int(x) != int(y):
            return _sign(int(x) - int(y))
    # 11.3: a pre-release version has lower precedence than the normal version.
    if not pre_a or not pre_b:
        return (not pre_a) - (not pre_b)
    # 11.4: identifiers left to right until a difference is found.
    ids_a, ids_b = pre_a.split("."), pre_b.split(".")
    for x, y in zip(ids_a, ids_b, strict=False):
        if x == y:
            continue
        if _is_numeric(x) and _is_numeric(y):
            return _sign(int(x) - int(y))  # 11.4.1: numerically
        if _is_numeric(x) != _is_numeric(y):
            return -1 if _is_numeric(x) else 1  # 11.4.3: numeric < alphanumeric
        return -1 if x < y else 1  # 11.4.2: lexically in ASCII sort order
    # 11.4.4: a larger set of fields wins when all preceding identifiers are equal.
    return _sign(len(ids_a) - len(ids_b))


def spec_sorted(texts: list[str]) -> list[str]:
    return sorted(texts, key=cmp_to_key(spec_compare))


# --- strategies ----------------------------------------------------------------------------

ID_CHARS = "0123456789abcxyzABCXYZ-"

numbers = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=2**64 * 1000),
    st.sampled_from([2**64 - 1, 2**64, 2**64 + 1, 10**30]),
)
numeric_ids = st.one_of(st.integers(0, 12), st.integers(0, 10**25)).map(str)
alphanumeric_ids = st.text(ID_CHARS, min_size=1, max_size=8).filter(lambda s: not s.isdigit())
prereleases = st.lists(st.one_of(numeric_ids, alphanumeric_ids), max_size=5).map(tuple)
versions = st.builds(Version, numbers, numbers, numbers, prereleases)

# A small world where equal parts, shared prefixes and numeric/alphanumeric ties are common.
small_ids = st.sampled_from(["0", "1", "2", "10", "a", "b", "alpha", "beta", "a-", "-", "0a", "A"])
small_versions = st.builds(
    Version,
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 2),
    st.lists(small_ids, max_size=3).map(tuple),
)
any_versions = st.one_of(small_versions, versions)


# --- grammar and round trip ----------------------------------------------------------------


@given(versions)
def test_format_then_parse_is_identity(version: Version) -> None:
    text = format_version(version)
    assert str(version) == text
    assert parse_version(text) == version
    assert find_version(text) == version
    assert parse_version(text).sort_key == version.sort_key


# A version is a tag, so at most 128 characters (longer ones: see the test below).
@given(st.from_regex(SEMVER_ORG, fullmatch=True).filter(lambda text: len(text) <= 128))
def test_every_semver_org_version_parses_and_formats_back(text: str) -> None:
    version = parse_version(text)
    assert format_version(version) == text
    major, minor, patch = (int(part) for part in text.partition("-")[0].split("."))
    assert (version.major, version.minor, version.patch) == (major, minor, patch)
    pre = text.partition("-")[2]
    assert version.prerelease == (tuple(pre.split(".")) if pre else ())
    assert version.is_stable is (not pre)


@pytest.mark.parametrize(
    "text",
    [
        "1.0.0-" + "a" * 123,  # 129 characters
        "1.0." + "9" * 125,
        "1.0." + "9" * 5000,  # int() refuses over 4,300 digits
    ],
)
def test_versions_longer_than_a_tag_are_refused(text: str) -> None:
    with pytest.raises(TagInvalid):
        parse_version(text)
    assert find_version(text) is None


@given(st.text("0123456789.-+vaZ \n", max_size=14))
def test_parse_accepts_exactly_the_semver_org_grammar(text: str) -> None:
    if SEMVER_ORG.fullmatch(text):
        assert format_version(parse_version(text)) == text
    else:
        with pytest.raises(TagInvalid):
            parse_version(text)
        assert find_version(text) is None


def test_huge_numbers_round_trip() -> None:
    text = f"{2**64}.{2**70 + 3}.{10**30}-{2**65}.x"
    version = parse_version(text)
    assert version.major == 2**64
    assert version.minor == 2**70 + 3
    assert version.patch == 10**30
    assert version.prerelease == (str(2**65), "x")
    assert format_version(version) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0", Version(0, 0, 0)),
        ("3.4.1", Version(3, 4, 1)),
        ("2.4.1-beta.1", Version(2, 4, 1, ("beta", "1"))),
        ("1.0.0-rc.1.2", Version(1, 0, 0, ("rc", "1", "2"))),
        ("1.0.0-0", Version(1, 0, 0, ("0",))),
        ("1.0.0-0a", Version(1, 0, 0, ("0a",))),  # alphanumeric: a leading zero is fine
        ("1.0.0-00a.-", Version(1, 0, 0, ("00a", "-"))),
        ("1.0.0-x-y-z.--", Version(1, 0, 0, ("x-y-z", "--"))),
        ("1.0.0-Alpha", Version(1, 0, 0, ("Alpha",))),
    ],
)
def test_parse_examples(text: str, expected: Version) -> None:
    assert parse_version(text) == expected
    assert format_version(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "00.0.0",
        "1.2.3-01",
        "1.2.3-alpha.01",
        "1.2.3-00",
        "1.2.3-",
        "1.2.3-.a",
        "1.2.3-a.",
        "1.2.3-a..b",
        "1..3",
        ".1.2.3",
        "v1.2.3",
        "V1.2.3",
        "1.2.3+b",
        "1.2.3+",
        "1.2.3-rc.1+build.5",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "\t1.2.3",
        "1.2. 3",
        "1.2.3-a b",
        "1.2.3-a_b",
        "1.2.3-é",
        "\uff11.2.3",  # FULLWIDTH DIGIT ONE
        "1.2.3-\u0663",  # ARABIC-INDIC DIGIT THREE
        "-1.2.3",
        "+1.2.3",
        "1.2.-3",
        "latest",
        "a.b.c",
    ],
)
def test_parse_refuses_non_semver(text: str) -> None:
    with pytest.raises(TagInvalid) as caught:
        parse_version(text)
    assert caught.value.code is ErrorCode.TAG_INVALID
    assert find_version(text) is None


def test_build_metadata_is_refused_with_its_own_reason() -> None:
    with pytest.raises(TagInvalid, match="build metadata"):
        parse_version("1.2.3+build.7")


def test_refusal_message_quotes_a_truncated_input() -> None:
    with pytest.raises(TagInvalid) as caught:
        parse_version("x" * 1000)
    assert "is not a SemVer version" in caught.value.message
    assert len(caught.value.message) < 200


# --- precedence ----------------------------------------------------------------------------

SPEC_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


@pytest.mark.parametrize(
    "chain",
    [
        SPEC_CHAIN,
        ["1.0.0", "2.0.0", "2.1.0", "2.1.1"],
        ["1.0.0-alpha.2", "1.0.0-alpha.10"],
        ["1.9.0", "1.10.0", "1.11.0"],
        ["0.0.9", "0.0.10", "0.1.0", "1.0.0-0", "1.0.0"],
        ["1.0.0-2", "1.0.0-10", "1.0.0-1a", "1.0.0-a"],
        ["1.0.0-A", "1.0.0-Z", "1.0.0-a"],  # ASCII: upper case sorts first
        ["1.0.0-a", "1.0.0-a.b", "1.0.0-a-"],  # "a" < "a-" decides before the second id
        ["1.0.0-rc.1", "1.0.0", "1.0.1-alpha", "1.0.1"],
        [f"{2**64}.0.0", f"{2**64 + 1}.0.0", f"{10**30}.0.0"],
    ],
)
def test_precedence_chains(chain: list[str]) -> None:
    parsed = [parse_version(text) for text in chain]
    for lower, higher in pairwise(parsed):
        assert lower < higher
        assert higher > lower
        assert lower <= higher
        assert lower != higher
        assert lower.sort_key < higher.sort_key
    assert sorted(reversed(parsed)) == parsed
    assert [format_version(v) for v in sorted(parsed, key=lambda v: v.sort_key)] == chain
    assert spec_sorted(list(reversed(chain))) == chain  # the reference agrees with the spec


@given(any_versions, any_versions)
def test_ordering_matches_semver_org_precedence(a: Version, b: Version) -> None:
    expected = spec_compare(format_version(a), format_version(b))
    assert (a < b, a == b, a > b) == (expected < 0, expected == 0, expected > 0)
    assert (a <= b, a >= b) == (expected <= 0, expected >= 0)
    key = _sign((a.sort_key > b.sort_key) - (a.sort_key < b.sort_key))
    assert key == expected


@given(any_versions, any_versions)
def test_ordering_is_antisymmetric_and_total(a: Version, b: Version) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    assert (a < b) == (b > a)
    assert (a == b) == (a.sort_key == b.sort_key)
    if a == b:
        assert hash(a) == hash(b)


@given(any_versions, any_versions, any_versions)
def test_ordering_is_transitive(a: Version, b: Version, c: Version) -> None:
    low, mid, high = sorted([a, b, c])
    assert low <= mid <= high
    assert low <= high
    if a <= b and b <= c:
        assert a <= c
    if a < b and b < c:
        assert a < c


@given(st.lists(any_versions, max_size=12))
def test_sorting_agrees_with_the_reference_sort(items: list[Version]) -> None:
    texts = [format_version(v) for v in items]
    assert [format_version(v) for v in sorted(items)] == spec_sorted(texts)
    assert [format_version(v) for v in sorted(items, key=lambda v: v.sort_key)] == spec_sorted(
        texts
    )


@given(small_versions)
def test_a_prerelease_sorts_below_its_release(version: Version) -> None:
    assume(version.prerelease)
    release = Version(version.major, version.minor, version.patch)
    assert version < release
    assert not version.is_stable
    assert release.is_stable
    assert version < Version(version.major, version.minor, version.patch + 1, version.prerelease)


def test_comparing_with_another_type_is_not_supported() -> None:
    version = Version(1, 0, 0)
    assert version.__lt__("1.0.0") is NotImplemented
    assert version != "1.0.0"
    with pytest.raises(TypeError):
        _ = version < "1.0.0"  # type: ignore[operator]


def test_versions_are_hashable_values() -> None:
    assert {parse_version("1.0.0-rc.1"), parse_version("1.0.0-rc.1")} == {
        Version(1, 0, 0, ("rc", "1"))
    }
    assert "sort_key" not in repr(Version(1, 2, 3))


# --- suggestions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.2.3", "1.2.3"),
        ("V2.0.0-rc.1", "2.0.0-rc.1"),
        ("v10.20.30-alpha.1", "10.20.30-alpha.1"),
        ("v1.2", None),
        ("v1", None),
        ("v6", None),
        ("v01.2.3", None),  # looks like one but is not a valid version
        ("v1.2.3-01", None),
        ("1.2.3", None),
        ("vv1.2.3", None),
        ("version1.2.3", None),
        ("latest", None),
        ("v1.2.3\n", None),
        ("", None),
    ],
)
def test_suggest_version(text: str, expected: str | None) -> None:
    assert suggest_version(text) == expected


@given(versions)
def test_suggest_strips_a_v_prefix_from_any_version(version: Version) -> None:
    text = format_version(version)
    assert suggest_version("v" + text) == text
    assert suggest_version("V" + text) == text
    assert suggest_version(text) is None
