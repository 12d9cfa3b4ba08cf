"""Repository names, feeds, tags and references (semreg.domain.names)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semreg.domain.digest import Digest
from semreg.domain.errors import (
    DigestInvalid,
    ErrorCode,
    NameInvalid,
    RequestInvalid,
    TagInvalid,
)
from semreg.domain.names import (
    MAX_FEED_LENGTH,
    MAX_NAME_LENGTH,
    RepoPath,
    Tag,
    parse_feed_name,
    parse_name,
    parse_reference,
    parse_repo_path,
    parse_tag,
)

# The grammars exactly as the distribution-spec writes them.
SPEC_NAME = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
SPEC_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
SPEC_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"


def bounded(pattern: str) -> str:
    """The spec regex with capped repetitions: short examples, a subset of the language."""
    return pattern.replace("+", "{1,5}").replace("*", "{0,3}")


spec_names = st.from_regex(bounded(SPEC_NAME), fullmatch=True).filter(
    lambda n: len(n) <= MAX_NAME_LENGTH
)
spec_components = st.from_regex(bounded(SPEC_COMPONENT), fullmatch=True)
# Cheaper to draw than spec_names: the name grammar is component ("/" component)*.
joined_names = st.lists(spec_components, min_size=1, max_size=4).map("/".join)
spec_tags = st.from_regex(SPEC_TAG, fullmatch=True)


# --- names --------------------------------------------------------------------------------------


@given(spec_names)
def test_every_spec_name_is_accepted(name: str) -> None:
    assert re.fullmatch(SPEC_NAME, name)
    assert parse_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "feed/app",
        "feed/team/app",
        "my-feed/my_app/v1.2",
        "a__b/c---d/e.f",
        "0/1/2/3/4/5/6/7/8/9",
        "a" * MAX_NAME_LENGTH,
    ],
)
def test_valid_names(name: str) -> None:
    assert parse_name(name) == name


def test_overlong_name_is_refused() -> None:
    name = "a" * (MAX_NAME_LENGTH + 1)
    with pytest.raises(NameInvalid) as info:
        parse_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID
    assert info.value.message == "invalid repository name: longer than 255 characters"
    assert info.value.detail == {"length": 256}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "the name is empty"),
        ("/feed/app", "the name must not start with '/'"),
        ("feed//app", "the name has an empty path component"),
        ("feed/app/", "the name has an empty path component"),
        ("feed/../app", "path traversal and escaped characters are not allowed"),
        ("..", "path traversal and escaped characters are not allowed"),
        ("feed/app%2fx", "path traversal and escaped characters are not allowed"),
        ("%2e%2e/app", "path traversal and escaped characters are not allowed"),
        ("Feed/app", "names must be lower-case"),
        ("feed/App", "names must be lower-case"),
        ("feed/a..b", "each component must match"),
        ("feed/-app", "each component must match"),
        ("feed/app-", "each component must match"),
        ("feed/a___b", "each component must match"),
        ("feed/a._b", "each component must match"),
        ("feed/.app", "each component must match"),
        ("feed/app:1", "each component must match"),
        ("feed/app\n", "each component must match"),
        ("feed app", "each component must match"),
        ("feed/ünï", "each component must match"),
    ],
)
def test_invalid_names_are_explained(name: str, reason: str) -> None:
    with pytest.raises(NameInvalid) as info:
        parse_name(name)
    assert info.value.message.startswith(f"invalid repository name {name!r}: {reason}")
    assert info.value.detail == {"name": name}


def test_invalid_name_message_is_truncated() -> None:
    name = "A" * 255
    with pytest.raises(NameInvalid) as info:
        parse_name(name)
    assert repr("A" * 100) in info.value.message
    assert "A" * 101 not in info.value.message
    assert "names must be lower-case" in info.value.message


@given(joined_names, st.data())
def test_a_bad_character_anywhere_is_refused(name: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(name)))
    bad = data.draw(st.sampled_from(["%", "A", "Z", " ", ":", "@", "+", "~", "\\", "\x00"]))
    with pytest.raises(NameInvalid):
        parse_name(name[:position] + bad + name[position:])


@given(st.lists(spec_components, min_size=1, max_size=4), st.data())
def test_empty_or_traversal_components_are_refused(
    components: list[str], data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(components)))
    bad = data.draw(st.sampled_from(["", "..", "."]))
    name = "/".join([*components[:position], bad, *components[position:]])
    with pytest.raises(NameInvalid):
        parse_name(name)


@given(st.text(max_size=40))
def test_parse_name_agrees_with_the_spec_regex(text: str) -> None:
    if re.fullmatch(SPEC_NAME, text):
        assert parse_name(text) == text
    else:
        with pytest.raises(NameInvalid):
            parse_name(text)


# --- repository paths and feeds -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "feed", "repo"),
    [
        ("apps/app", "apps", "app"),
        ("apps/myorg/app", "apps", "myorg/app"),
        ("a/b/c/d", "a", "b/c/d"),
    ],
)
def test_repo_path_splits_off_the_feed(name: str, feed: str, repo: str) -> None:
    path = parse_repo_path(name)
    assert path == RepoPath(feed, repo)
    assert str(path) == name


def test_repo_path_needs_a_repository() -> None:
    with pytest.raises(NameInvalid) as info:
        parse_repo_path("apps")
    assert info.value.message == (
        "invalid repository name 'apps': expected <feed>/<repository>, e.g. apps/app"
    )
    assert info.value.detail == {"name": "apps"}


def test_repo_path_validates_the_name() -> None:
    with pytest.raises(NameInvalid, match="must not start with '/'"):
        parse_repo_path("/apps/app")


@given(joined_names)
def test_repo_path_round_trips(name: str) -> None:
    if "/" in name:
        assert str(parse_repo_path(name)) == name
    else:
        with pytest.raises(NameInvalid):
            parse_repo_path(name)


@pytest.mark.parametrize("name", ["apps", "my-feed", "a.b_c", "x" * MAX_FEED_LENGTH, "0"])
def test_valid_feed_names(name: str) -> None:
    assert parse_feed_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Apps", "a/b", "-a", "a-", "a..b", "a b", "a%2f", "x" * (MAX_FEED_LENGTH + 1), "a\n"],
)
def test_invalid_feed_names(name: str) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_feed_name(name)
    assert info.value.code is ErrorCode.REQUEST_INVALID
    assert info.value.message.startswith(f"invalid feed name {name[:80]!r}: ")
    assert "at most 64 characters" in info.value.message
    assert info.value.detail == {"name": name[:80]}


@given(spec_components)
def test_every_short_spec_component_is_a_feed_name(name: str) -> None:
    assert len(name) <= MAX_FEED_LENGTH
    assert parse_feed_name(name) == name


# --- tags and references ------------------------------------------------------------------------


@given(spec_tags)
def test_every_spec_tag_is_accepted(text: str) -> None:
    assert parse_tag(text) == Tag(text)
    assert str(parse_tag(text)) == text


@given(st.text(max_size=140))
def test_parse_tag_agrees_with_the_spec_regex(text: str) -> None:
    if re.fullmatch(SPEC_TAG, text):
        assert parse_tag(text).name == text
    else:
        with pytest.raises(TagInvalid):
            parse_tag(text)


@pytest.mark.parametrize("text", ["latest", "1.0.0", "_x", "A-b.C_d", "v" * 128, "1.0.0-rc.1"])
def test_valid_tags(text: str) -> None:
    assert parse_tag(text) == Tag(text)


@pytest.mark.parametrize(
    "text", ["", ".hidden", "-x", "a/b", "a:b", "a+b", "v" * 129, "tag\n", "ta g", "ünï"]
)
def test_invalid_tags(text: str) -> None:
    with pytest.raises(TagInvalid) as info:
        parse_tag(text)
    assert info.value.code is ErrorCode.TAG_INVALID
    assert info.value.message.startswith(f"invalid tag {text[:140]!r}: tags are 1-128 characters")
    assert info.value.detail == {"tag": text[:140]}


def test_tags_order_by_name() -> None:
    assert sorted([Tag("b"), Tag("B"), Tag("a")]) == [Tag("B"), Tag("a"), Tag("b")]


def test_reference_with_a_colon_is_a_digest() -> None:
    hex_ = "a" * 64
    assert parse_reference(f"sha256:{hex_}") == Digest("sha256", hex_)


def test_reference_without_a_colon_is_a_tag() -> None:
    assert parse_reference("v1.2.3") == Tag("v1.2.3")


def test_bad_digest_reference_is_a_digest_error() -> None:
    with pytest.raises(DigestInvalid):
        parse_reference("sha256:abc")
    with pytest.raises(DigestInvalid):
        parse_reference("latest:1")


def test_bad_tag_reference_is_a_tag_error() -> None:
    with pytest.raises(TagInvalid):
        parse_reference("-latest")
