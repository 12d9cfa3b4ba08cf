"""Container Versioning rules: permitted tags, the tag-write decision and the virtual tags.

``reference_virtual_tags`` is a deliberately naive reading of the issue's rules on version text,
sharing nothing with ``semreg.domain.tags`` but the semver.org comparator of ``test_semver``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from semreg.domain.digest import Digest
from semreg.domain.errors import ErrorCode, ReleaseImmutable, RequestInvalid, TagInvalid
from semreg.domain.names import Tag
from semreg.domain.semver import Version, format_version, parse_version
from semreg.domain.tags import (
    LATEST,
    TagOrigin,
    TagPolicy,
    TagWrite,
    VirtualTag,
    affected_virtual_tags,
    check_tag_write,
    fallback_subject,
    glob_matches,
    is_virtual_tag,
    parse_permitted_tags,
    select_target,
    virtual_tags,
)
from tests.unit.domain.test_semver import spec_sorted

HEX_A = "a" * 64
HEX_B = "b" * 64
DIGEST_A = Digest("sha256", HEX_A)
DIGEST_B = Digest("sha256", HEX_B)
PROGET = TagPolicy(True, ("stable", "nightly-*", "!nightly-bad*"))


# --- the naive reference ---------------------------------------------------------------------


def _core(text: str) -> tuple[str, str, bool]:
    """(major, "major.minor", stable) of a version text, by plain string surgery."""
    core, dash, _ = text.partition("-")
    major, minor, _patch = core.split(".")
    return major, f"{major}.{minor}", not dash


def reference_virtual_tags(texts: set[str]) -> dict[str, str]:
    """latest / N / N.M -> version text, straight from the issue's wording."""
    ordered = spec_sorted(sorted(texts))
    stable = [t for t in ordered if _core(t)[2]]
    out: dict[str, str] = {}
    if stable:
        out["latest"] = stable[-1]  # the highest stable release...
    elif ordered:
        out["latest"] = ordered[-1]  # ...else, with no stable release, the highest pre-release
    for text in stable:  # ascending, so the last one written per name is the highest
        major, minor, _ = _core(text)
        out[major] = text
        out[minor] = text
    return out


def computed(texts: set[str] | list[str]) -> dict[str, str]:
    return {
        name: format_version(v) for name, v in virtual_tags(parse_version(t) for t in texts).items()
    }


# --- strategies ------------------------------------------------------------------------------

small_prereleases = st.sampled_from(
    [(), (), (), ("alpha",), ("alpha", "1"), ("beta",), ("rc", "1"), ("rc", "2"), ("1",)]
)
pool_versions = st.builds(
    Version,
    st.integers(0, 3) | st.just(2**64),
    st.integers(0, 3),
    st.integers(0, 3),
    small_prereleases,
)
version_sets = st.lists(pool_versions, max_size=25)


# --- permitted tags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "permitted"),
    [
        ("stable", True),
        ("nightly-", True),
        ("nightly-2024-05-01", True),
        ("nightly-good-bad", True),  # negations are anchored too
        ("nightly-bad", False),
        ("nightly-badly", False),
        ("nightly", False),
        ("stable2", False),
        ("unstable", False),
        ("Stable", False),  # tags are case-sensitive
        ("STABLE", False),
        ("Nightly-1", False),
        ("latest", False),
    ],
)
def test_proget_pattern_list(tag: str, permitted: bool) -> None:
    assert PROGET.permits(tag) is permitted


@pytest.mark.parametrize(
    ("patterns", "tag", "permitted"),
    [
        (("*",), "anything.at_all-1", True),
        (("*-dev",), "feature-x-dev", True),
        (("*-dev",), "feature-x-dev2", False),
        (("a*b*c",), "abc", True),
        (("a*b*c",), "axxbyyc", True),
        (("a*b*c",), "acb", False),
        (("v1.x",), "v1.x", True),
        (("v1.x",), "v1Ax", False),  # '.' is literal, not "any character"
        (("1.*",), "1.2", True),
        (("1.*",), "12", False),
        (("a+b",), "aab", False),  # regex metacharacters never act as such
        (("a+b",), "a+b", True),
        (("a?b",), "b", False),
        (("(a|b)",), "a", False),
        (("[ab]",), "a", False),
        (("^a$",), "a", False),
        (("a\\d",), "a1", False),
        (("*", "!*"), "x", False),
        (("!foo",), "bar", False),  # only negations: nothing is permitted
        ((), "stable", False),
        (("stable", "stable"), "stable", True),
    ],
)
def test_permits(patterns: tuple[str, ...], tag: str, permitted: bool) -> None:
    assert TagPolicy(True, patterns).permits(tag) is permitted


pattern_text = st.text("ab.-*", min_size=1, max_size=6)
patterns = st.lists(st.one_of(pattern_text, pattern_text.map(lambda p: "!" + p)), max_size=4)


@given(patterns, st.text("ab.-", min_size=1, max_size=8))
def test_permits_is_shell_style_matching(pattern_list: list[str], tag: str) -> None:
    positive = [p for p in pattern_list if not p.startswith("!")]
    negative = [p[1:] for p in pattern_list if p.startswith("!")]
    expected = any(fnmatchcase(tag, p) for p in positive) and not any(
        fnmatchcase(tag, p) for p in negative
    )
    assert TagPolicy(True, tuple(pattern_list)).permits(tag) is expected


# Patterns hold only [A-Za-z0-9_.*-], so fnmatch's other wildcards ('?', '[') never occur and
# fnmatchcase is an independent reference for '*'-only globs.
TAG_CHARACTERS = "ABCXYZabcxyz0189_.-"
few_letters = st.text("ab*", max_size=12)
any_pattern = st.text(TAG_CHARACTERS + "*", max_size=20)


@given(few_letters, st.text("ab", max_size=16))
def test_glob_matches_agrees_with_fnmatch_on_a_small_alphabet(pattern: str, text: str) -> None:
    assert glob_matches(pattern, text) is fnmatchcase(text, pattern)


@given(any_pattern, st.text(TAG_CHARACTERS, max_size=24))
def test_glob_matches_agrees_with_fnmatch(pattern: str, text: str) -> None:
    assert glob_matches(pattern, text) is fnmatchcase(text, pattern)


@given(any_pattern, st.data())
def test_glob_matches_what_the_pattern_spells(pattern: str, data: st.DataObject) -> None:
    """Replacing each '*' by any text gives a match (random texts rarely match: this finds them)."""
    parts = pattern.split("*")
    fills = [data.draw(st.text(TAG_CHARACTERS, max_size=5)) for _ in parts[1:]]
    text = "".join(part + fill for part, fill in zip(parts[:-1], fills, strict=True)) + parts[-1]
    assert glob_matches(pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "", True),
        ("**", "", True),
        ("a*a", "a", False),  # the anchored ends may not share a character
        ("a*a", "aa", True),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("*ab*ab*", "abab", True),
        ("*ab*ab*", "aba", False),
        ("a*b*a", "aba", True),
        ("*.*", "1.2", True),
        ("*.*", "12", False),
    ],
)
def test_glob_matches_edges(pattern: str, text: str, matches: bool) -> None:
    assert glob_matches(pattern, text) is matches
    assert fnmatchcase(text, pattern) is matches


ADVERSARIAL = [
    "*a*a*a*a*a*a*a*b",  # issue 9: 9.6 s for a 64-character tag with a backtracking regex
    "*a" * 60 + "*b",
    "a*" * 63 + "b",
    "*" + "a*" * 62 + "ab",
    "*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*aa*ab",
]


# The thread method fails the run even while a backtracking regex holds the interpreter.
@pytest.mark.timeout(30, method="thread")
@pytest.mark.parametrize("pattern", ADVERSARIAL)
def test_adversarial_patterns_do_not_backtrack(pattern: str) -> None:
    assert len(pattern) <= 128
    policy = TagPolicy(True, (pattern,))
    for length in (32, 64, 127, 128):
        tag = "a" * length
        # Each of these is decided in at most 128 * 128 comparisons; a regex took hours.
        assert policy.permits(tag) is fnmatchcase(tag, pattern) is False
        assert glob_matches(pattern, tag + "b") is fnmatchcase(tag + "b", pattern)
        assert check_tag_write_refuses(policy, tag)


def check_tag_write_refuses(policy: TagPolicy, tag: str) -> bool:
    with pytest.raises(TagInvalid):
        check_tag_write("apps", policy, TagWrite(Tag(tag), DIGEST_A))
    return True


def test_parse_permitted_tags_keeps_order_and_drops_duplicates() -> None:
    given_patterns = ["stable", "nightly-*", "!nightly-bad*", "stable", "*", "!x", "_a.b-c"]
    assert parse_permitted_tags(given_patterns) == (
        "stable",
        "nightly-*",
        "!nightly-bad*",
        "*",
        "!x",
        "_a.b-c",
    )
    assert parse_permitted_tags([]) == ()
    assert parse_permitted_tags(iter(["a"])) == ("a",)
    assert parse_permitted_tags(["x" * 128, "!" + "y" * 128]) == ("x" * 128, "!" + "y" * 128)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "!",
        "!!a",
        "a!",
        "a b",
        "a/b",
        "a:b",
        "a+b",
        "a?b",
        "[ab]",
        "é",
        "x" * 129,
        "!" + "x" * 129,
        "stable\n",
        "\nstable",
        "stable ",
    ],
)
def test_parse_permitted_tags_refuses_what_no_tag_can_hold(pattern: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_permitted_tags(["stable", pattern])
    assert caught.value.code is ErrorCode.REQUEST_INVALID
    assert caught.value.detail == {"pattern": pattern[:140]}
    assert "invalid permitted tag" in caught.value.message


# --- names the registry manages ----------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["latest", "0", "1", "3", "10", "0.0", "3.4", "123.456", str(2**64), f"{2**64}.0"]
)
def test_virtual_tag_names(tag: str) -> None:
    assert is_virtual_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "Latest",
        "LATEST",
        "latest-1",
        "latest.1",
        "01",
        "00",
        "1.02",
        "01.2",
        "1.2.3",
        "1.",
        ".1",
        "1..2",
        "v1",
        "v1.2",
        "1.2-rc",
        "1-rc",
        "",
        "stable",
        "latest\n",
        "3.4\n",
    ],
)
def test_not_virtual_tag_names(tag: str) -> None:
    assert not is_virtual_tag(tag)


@given(st.integers(min_value=0), st.integers(min_value=0))
def test_every_major_and_minor_name_is_virtual(major: int, minor: int) -> None:
    assert is_virtual_tag(str(major))
    assert is_virtual_tag(f"{major}.{minor}")
    assert not is_virtual_tag(f"{major}.{minor}.0")


@pytest.mark.parametrize("suffix", ["", ".sig", ".att", ".sbom"])
def test_fallback_subject_sha256(suffix: str) -> None:
    hex_ = "0123456789abcdef" * 4
    assert fallback_subject(f"sha256-{hex_}{suffix}") == Digest("sha256", hex_)


def test_fallback_subject_sha512() -> None:
    assert fallback_subject(f"sha512-{'c' * 128}.sig") == Digest("sha512", "c" * 128)


@pytest.mark.parametrize(
    "tag",
    [
        f"sha256-{'a' * 63}",
        f"sha256-{'a' * 65}",
        f"sha256-{'a' * 63}.sig",
        f"sha256-{'A' * 64}",
        f"sha256-{'g' * 64}",
        f"sha512-{'a' * 64}",
        f"sha512-{'a' * 127}",
        f"sha384-{'a' * 96}",
        f"sha256:{'a' * 64}",
        f"sha256-{'a' * 64}.sig.att",
        f"sha256-{'a' * 64}.foo",
        f"sha256-{'a' * 64}sig",
        f"SHA256-{'a' * 64}",
        f"xsha256-{'a' * 64}",
        f"sha256-{'a' * 64}\n",
        f"sha256-{'a' * 64}.sig\n",
        "sha256-",
        "latest",
        "1.2.3",
    ],
)
def test_not_fallback_tags(tag: str) -> None:
    assert fallback_subject(tag) is None


# --- check_tag_write ---------------------------------------------------------------------------


def write(tag: str, digest: Digest = DIGEST_A, **facts: Any) -> TagWrite:
    return TagWrite(Tag(tag), digest, **facts)


def refusal(policy: TagPolicy, tag_write: TagWrite) -> TagInvalid:
    with pytest.raises(TagInvalid) as caught:
        check_tag_write("apps", policy, tag_write)
    assert caught.value.code is ErrorCode.TAG_INVALID
    return caught.value


@pytest.mark.parametrize("tag", ["latest", "3", "3.4", "v6", "stable", "1.2.3", f"sha256-{HEX_B}"])
def test_versioning_off_accepts_everything_and_tracks_nothing(tag: str) -> None:
    off = TagPolicy(False, ("stable",))
    assert check_tag_write("apps", off, write(tag, release_digest=DIGEST_B)) is None


@pytest.mark.parametrize("tag", ["latest", "3.4", "v6", "Stable", f"sha256-{HEX_B}.sig"])
def test_replication_is_exempt_from_the_rules(tag: str) -> None:
    tag_write = write(tag, origin=TagOrigin.REPLICATION, release_digest=DIGEST_B)
    assert check_tag_write("apps", TagPolicy(True), tag_write) is None


def test_replication_may_move_a_release_and_it_is_still_tracked() -> None:
    tag_write = write("1.2.3-rc.1", origin=TagOrigin.REPLICATION, release_digest=DIGEST_B)
    assert check_tag_write("apps", TagPolicy(True), tag_write) == Version(1, 2, 3, ("rc", "1"))


@pytest.mark.parametrize(
    ("tag", "example"), [("latest", "1.0.0"), ("3", "3.0.0"), ("3.4", "3.4.0"), ("0", "0.0.0")]
)
@pytest.mark.parametrize("origin", [TagOrigin.PUSH, TagOrigin.PROMOTION, TagOrigin.RETAG])
def test_virtual_tags_cannot_be_written(tag: str, example: str, origin: TagOrigin) -> None:
    policy = TagPolicy(True, ("*",))  # even a permit-everything list cannot unlock them
    error = refusal(policy, write(tag, origin=origin))
    assert not isinstance(error, ReleaseImmutable)
    assert error.detail == {"tag": tag, "reason": "virtual"}
    assert "managed by semreg" in error.message
    assert "'apps'" in error.message
    assert example in error.message


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("3.4.1", Version(3, 4, 1)),
        ("2.4.1-beta.1", Version(2, 4, 1, ("beta", "1"))),
        ("1.0.0-rc.1.2", Version(1, 0, 0, ("rc", "1", "2"))),
    ],
)
def test_release_tags_are_accepted(tag: str, version: Version) -> None:
    assert check_tag_write("apps", TagPolicy(True), write(tag)) == version


def test_a_release_cannot_move_to_another_digest() -> None:
    error = refusal(TagPolicy(True, ("*",)), write("3.4.1", DIGEST_A, release_digest=DIGEST_B))
    assert isinstance(error, ReleaseImmutable)
    assert str(DIGEST_B) in error.message
    assert "immutable" in error.message
    assert error.detail == {"tag": "3.4.1", "digest": str(DIGEST_B)}


@pytest.mark.parametrize("origin", [TagOrigin.PROMOTION, TagOrigin.RETAG])
def test_immutability_holds_for_every_non_replication_origin(origin: TagOrigin) -> None:
    tag_write = write("1.0.0", DIGEST_A, origin=origin, release_digest=DIGEST_B)
    assert isinstance(refusal(TagPolicy(True), tag_write), ReleaseImmutable)


def test_pushing_the_same_digest_again_is_fine() -> None:
    tag_write = write("3.4.1", DIGEST_A, release_digest=DIGEST_A)
    assert check_tag_write("apps", TagPolicy(True), tag_write) == Version(3, 4, 1)


def test_force_moves_a_release() -> None:
    tag_write = write("3.4.1", DIGEST_A, release_digest=DIGEST_B, force=True)
    assert check_tag_write("apps", TagPolicy(True), tag_write) == Version(3, 4, 1)


@pytest.mark.parametrize("suffix", ["", ".sig", ".att", ".sbom"])
def test_fallback_tag_for_a_present_subject(suffix: str) -> None:
    tag_write = write(f"sha256-{HEX_B}{suffix}", fallback_subject_exists=True)
    assert check_tag_write("apps", TagPolicy(True), tag_write) is None


def test_fallback_tag_for_a_missing_subject_is_refused() -> None:
    tag = f"sha256-{HEX_B}.sig"
    error = refusal(TagPolicy(True, ("*",)), write(tag))
    assert error.detail == {"tag": tag, "reason": "fallback-subject-unknown"}
    assert str(DIGEST_B) in error.message


def test_a_malformed_fallback_tag_is_just_another_tag() -> None:
    tag = f"sha256-{'b' * 63}.sig"
    assert check_tag_write("apps", TagPolicy(True, ("sha256-*",)), write(tag)) is None
    assert refusal(TagPolicy(True), write(tag)).detail["reason"] == "not-a-release"


def test_permitted_tags_are_accepted() -> None:
    assert check_tag_write("apps", PROGET, write("stable")) is None
    assert check_tag_write("apps", PROGET, write("nightly-42")) is None


@pytest.mark.parametrize("tag", ["nightly-bad1", "Stable", "v6", "v6-latest", "1.2.3.4", "01.2.3"])
def test_other_tags_are_refused_naming_what_is_accepted(tag: str) -> None:
    error = refusal(PROGET, write(tag))
    assert error.detail == {"tag": tag, "reason": "not-a-release"}
    assert "'apps'" in error.message
    assert "MAJOR.MINOR.PATCH" in error.message
    assert "stable, nightly-*, !nightly-bad*" in error.message
    assert "did you mean" not in error.message


def test_refusal_without_permitted_tags_does_not_mention_them() -> None:
    error = refusal(TagPolicy(True), write("v6"))
    assert "permitted" not in error.message
    assert "did you mean" not in error.message


@pytest.mark.parametrize(
    ("tag", "hint"), [("v1.2.3", "1.2.3"), ("V2.0.0-rc.1", "2.0.0-rc.1"), ("v0.0.1", "0.0.1")]
)
def test_refusal_suggests_the_version_without_v(tag: str, hint: str) -> None:
    error = refusal(TagPolicy(True, ("stable",)), write(tag))
    assert f"did you mean {hint}?" in error.message
    assert error.detail["reason"] == "not-a-release"


# --- virtual tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        ([], {}),
        (
            ["3.1.0", "2.8.4"],  # latest stays on the highest release, not the last push
            {"latest": "3.1.0", "3": "3.1.0", "3.1": "3.1.0", "2": "2.8.4", "2.8": "2.8.4"},
        ),
        (["3.4.0", "3.4.1"], {"latest": "3.4.1", "3": "3.4.1", "3.4": "3.4.1"}),
        (["3.4.1", "3.4.2-beta.1"], {"latest": "3.4.1", "3": "3.4.1", "3.4": "3.4.1"}),
        (["1.0.0-rc.1", "1.0.0-beta.11"], {"latest": "1.0.0-rc.1"}),
        (["0.1.0", "1.0.0-rc.1"], {"latest": "0.1.0", "0": "0.1.0", "0.1": "0.1.0"}),
        (
            ["1.9.0", "1.10.0"],
            {"latest": "1.10.0", "1": "1.10.0", "1.9": "1.9.0", "1.10": "1.10.0"},
        ),
        (["3.0.0", "3.5.0-rc.1", "4.0.0-alpha"], {"latest": "3.0.0", "3": "3.0.0", "3.0": "3.0.0"}),
        (
            ["2.0.0", "2.1.0-rc.1", "2.0.5", "10.0.0-alpha"],
            {"latest": "2.0.5", "2": "2.0.5", "2.0": "2.0.5"},
        ),
    ],
)
def test_virtual_tag_examples(releases: list[str], expected: dict[str, str]) -> None:
    assert computed(releases) == expected
    assert reference_virtual_tags(set(releases)) == expected


@given(version_sets, st.randoms(use_true_random=False))
def test_virtual_tags_ignore_order_and_duplicates(items: list[Version], random) -> None:
    shuffled = items + items[: len(items) // 2]
    random.shuffle(shuffled)
    assert virtual_tags(items) == virtual_tags(shuffled)
    assert virtual_tags(iter(items)) == virtual_tags(items)


@given(version_sets)
def test_virtual_tags_only_target_their_inputs(items: list[Version]) -> None:
    assert set(virtual_tags(items).values()) <= set(items)


@given(version_sets)
def test_virtual_tags_equal_the_naive_reference(items: list[Version]) -> None:
    texts = {format_version(v) for v in items}
    assert computed(texts) == reference_virtual_tags(texts)


@given(version_sets)
def test_virtual_tag_semantics(items: list[Version]) -> None:
    tags = virtual_tags(items)
    stable = [v for v in items if v.is_stable]
    if not items:
        assert tags == {}
        return
    assert tags[LATEST] == (max(stable) if stable else max(items))
    for major in {v.major for v in items}:
        line = [v for v in stable if v.major == major]
        assert tags.get(str(major)) == (max(line) if line else None)
    for major, minor in {(v.major, v.minor) for v in items}:
        line = [v for v in stable if (v.major, v.minor) == (major, minor)]
        assert tags.get(f"{major}.{minor}") == (max(line) if line else None)
    expected_names = {LATEST} | {str(v.major) for v in stable}
    expected_names |= {f"{v.major}.{v.minor}" for v in stable}
    assert set(tags) == expected_names
    assert all(is_virtual_tag(name) for name in tags)


@given(version_sets)
def test_no_prerelease_gets_a_major_or_minor_tag(items: list[Version]) -> None:
    for name, target in virtual_tags(items).items():
        if name != LATEST:
            assert target.is_stable
            assert name in (str(target.major), f"{target.major}.{target.minor}")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("3.4.1", ["latest", "3", "3.4"]),
        ("0.0.0", ["latest", "0", "0.0"]),
        ("3.4.2-beta.1", ["latest"]),
        (f"{2**64}.7.0", ["latest", str(2**64), f"{2**64}.7"]),
    ],
)
def test_affected_virtual_tags_examples(text: str, names: list[str]) -> None:
    affected = affected_virtual_tags(parse_version(text))
    assert [t.name for t in affected] == names
    # Added to an empty repository, the version creates exactly the tags it affects.
    assert sorted(computed([text])) == sorted(names)


def test_virtual_tag_selection_fields() -> None:
    latest, major, minor = affected_virtual_tags(Version(3, 4, 1))
    assert (latest.major, latest.minor, latest.falls_back_to_prerelease) == (None, None, True)
    assert (major.major, major.minor, major.falls_back_to_prerelease) == (3, None, False)
    assert (minor.major, minor.minor, minor.falls_back_to_prerelease) == (3, 4, False)
    assert minor.selects(Version(3, 4, 0))
    assert not minor.selects(Version(3, 5, 0))
    assert not minor.selects(Version(2, 4, 0))
    assert major.selects(Version(3, 0, 0))
    assert not major.selects(Version(4, 0, 0))
    assert latest.selects(Version(9, 9, 9, ("rc",)))


@given(version_sets, pool_versions)
def test_affected_virtual_tags_cover_every_change(items: list[Version], version: Version) -> None:
    names = {t.name for t in affected_virtual_tags(version)}
    before = virtual_tags(set(items) - {version})
    after = virtual_tags(set(items) | {version})
    changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    assert changed <= names
    for tag in affected_virtual_tags(version):  # what the database query must reproduce
        assert select_target(tag, set(items) | {version}) == after.get(tag.name)
        assert select_target(tag, set(items) - {version}) == before.get(tag.name)


def test_select_target_of_a_major_tag_never_falls_back_to_a_prerelease() -> None:
    items = [Version(3, 0, 0, ("rc", "1")), Version(2, 0, 0)]
    assert select_target(VirtualTag("3", 3), items) is None
    assert select_target(VirtualTag("3.0", 3, 0), items) is None
    assert select_target(VirtualTag(LATEST), items) == Version(2, 0, 0)
    assert select_target(VirtualTag(LATEST), items[:1]) == items[0]
    assert select_target(VirtualTag(LATEST), []) is None


class IncrementalVirtualTags(RuleBasedStateMachine):
    """Pushes and deletes releases against a model, updating virtual tags like the write path.

    The registry re-evaluates only ``affected_virtual_tags(v)`` after a push or delete of ``v``
    and asks ``check_tag_write`` about every push; after every step that incremental state must
    equal a full naive recomputation, and a deleted release stays reserved for its digest.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[str, Version] = {}
        self.digests: dict[str, Digest] = {}  # live and reserved releases
        self.tags: dict[str, Version] = {}

    def _refresh(self, version: Version) -> None:
        for tag in affected_virtual_tags(version):
            target = select_target(tag, self.live.values())
            if target is None:
                self.tags.pop(tag.name, None)
            else:
                self.tags[tag.name] = target

    @rule(version=pool_versions, digest=st.sampled_from([DIGEST_A, DIGEST_B]))
    def push(self, version: Version, digest: Digest) -> None:
        text = format_version(version)
        known = self.digests.get(text)
        tag_write = write(text, digest, release_digest=known)
        if known is not None and known != digest:
            with pytest.raises(ReleaseImmutable):
                check_tag_write("apps", TagPolicy(True), tag_write)
            return
        assert check_tag_write("apps", TagPolicy(True), tag_write) == version
        self.live[text] = version
        self.digests[text] = digest
        self._refresh(version)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        text = data.draw(st.sampled_from(sorted(self.live)))
        version = self.live.pop(text)
        self._refresh(version)

    @invariant()
    def virtual_tags_match_the_reference(self) -> None:
        texts = set(self.live)
        expected = reference_virtual_tags(texts)
        assert {n: format_version(v) for n, v in self.tags.items()} == expected
        assert computed(texts) == expected


TestIncrementalVirtualTags = IncrementalVirtualTags.TestCase
