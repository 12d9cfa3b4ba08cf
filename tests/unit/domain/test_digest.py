"""Digest parsing, formatting and hashing (semreg.domain.digest)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semreg.domain.digest import (
    DEFAULT_ALGORITHM,
    HEX_LENGTH,
    Digest,
    compute_digest,
    format_digest,
    new_hasher,
    parse_digest,
)
from semreg.domain.errors import DigestInvalid, DigestUnsupported, ErrorCode

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def hex_of(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length)


@given(
    st.sampled_from(sorted(HEX_LENGTH)).flatmap(
        lambda a: st.tuples(st.just(a), hex_of(HEX_LENGTH[a]))
    )
)
def test_parse_and_format_round_trip(pair: tuple[str, str]) -> None:
    algorithm, encoded = pair
    text = f"{algorithm}:{encoded}"
    digest = parse_digest(text)
    assert digest == Digest(algorithm, encoded)
    assert format_digest(digest) == text
    assert str(digest) == text
    assert parse_digest(format_digest(digest)) == digest


@given(st.binary(max_size=512), st.sampled_from(sorted(HEX_LENGTH)))
def test_compute_digest_matches_hashlib(data: bytes, algorithm: str) -> None:
    digest = compute_digest(data, algorithm)
    assert digest == Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    assert parse_digest(str(digest)) == digest


def test_compute_digest_defaults_to_sha256() -> None:
    assert DEFAULT_ALGORITHM == "sha256"
    assert compute_digest(b"") == Digest("sha256", SHA256_EMPTY)


def test_new_hasher_is_incremental() -> None:
    hasher = new_hasher()
    hasher.update(b"hello ")
    hasher.update(memoryview(b"world"))
    assert hasher.hexdigest() == hashlib.sha256(b"hello world").hexdigest()
    sha512 = new_hasher("sha512")
    sha512.update(bytearray(b"x"))
    assert sha512.hexdigest() == hashlib.sha512(b"x").hexdigest()


def test_digests_order_by_algorithm_then_hex() -> None:
    a = Digest("sha256", "b" * 64)
    b = Digest("sha256", "c" * 64)
    c = Digest("sha512", "0" * 128)
    assert sorted([c, b, a]) == [a, b, c]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + SHA256_EMPTY,
        "SHA256:" + SHA256_EMPTY,
        "sha256::" + SHA256_EMPTY,
        "sha256 :" + SHA256_EMPTY,
        "sha256:" + SHA256_EMPTY + "/",
        "-sha256:" + SHA256_EMPTY,
        "sha256-:" + SHA256_EMPTY,
        "sha256:" + "a" * 300,
    ],
)
def test_malformed_digests_are_invalid(text: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        parse_digest(text)
    assert type(info.value) is DigestInvalid
    assert info.value.code is ErrorCode.DIGEST_INVALID
    assert info.value.message.startswith("invalid digest ")
    assert "expected <algorithm>:<hex>" in info.value.message


def test_overlong_text_is_refused_before_the_grammar() -> None:
    # 257 characters that would otherwise be a grammatical (unsupported) digest
    text = "md5:" + "a" * 253
    assert len(text) == 257
    with pytest.raises(DigestInvalid) as info:
        parse_digest(text)
    assert type(info.value) is DigestInvalid
    # the message quotes at most 80 characters of the input
    assert repr(text[:80]) in info.value.message
    assert text[:81] not in info.value.message


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "md5"),
        ("sha384:" + "a" * 96, "sha384"),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "sha256+b64u"),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "multihash+base58"),
        ("blake3:" + "a" * 64, "blake3"),
    ],
)
def test_other_algorithms_are_unsupported(text: str, algorithm: str) -> None:
    with pytest.raises(DigestUnsupported) as info:
        parse_digest(text)
    assert info.value.code is ErrorCode.DIGEST_INVALID
    assert info.value.detail == {"algorithm": algorithm}
    assert f"unsupported digest algorithm {algorithm!r}" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256:" + SHA256_EMPTY[:-1], "invalid sha256 digest: expected 64 lower-case hex"),
        ("sha256:" + SHA256_EMPTY + "0", "invalid sha256 digest: expected 64 lower-case hex"),
        ("sha256:" + SHA256_EMPTY.upper(), "invalid sha256 digest: expected 64 lower-case hex"),
        ("sha256:" + "g" * 64, "invalid sha256 digest: expected 64 lower-case hex"),
        ("sha256:" + "_" * 64, "invalid sha256 digest: expected 64 lower-case hex"),
        ("sha512:" + SHA256_EMPTY, "invalid sha512 digest: expected 128 lower-case hex"),
    ],
)
def test_wrong_encoding_for_the_algorithm_is_invalid(text: str, expected: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        parse_digest(text)
    assert type(info.value) is DigestInvalid
    assert expected in info.value.message


@given(hex_of(64), st.integers(0, 63), st.sampled_from("GXZ:/%+ .-_"))
def test_any_foreign_character_in_a_sha256_is_refused(
    encoded: str, position: int, char: str
) -> None:
    with pytest.raises(DigestInvalid):
        parse_digest("sha256:" + encoded[:position] + char + encoded[position + 1 :])


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " "])
@pytest.mark.parametrize("encoded", [SHA256_EMPTY, SHA256_EMPTY[:-1]])
def test_trailing_whitespace_is_refused(encoded: str, suffix: str) -> None:
    # A regex ``$`` also matches before a final newline: the digest must be the whole text.
    with pytest.raises(DigestInvalid):
        parse_digest(f"sha256:{encoded}{suffix}")
