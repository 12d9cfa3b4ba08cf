"""Fuzzing /v2 of a real ``semreg serve`` (issue 9, "Prove the classes absent").

Hypothesis strategies for names, tags, digests, references, ``Range``, ``Content-Range``,
query strings and manifests (valid-ish JSON with hostile values: integers of thousands of
digits, nesting deeper than the parser's recursion limit, NUL, long and non-ASCII text, wrong
types) are sent with httpx to the session's server. Every answer must be below 500, carry no
traceback, and every refusal must be one documented OCI error (``tests.oci_errors``); the
server must log no unexpected error meanwhile. Bodies that are right answers get a cheap
oracle too (a 206 is the slice its ``Content-Range`` names).

The corpus is kept as ``@example`` cases: every input that once found a fault (all of them
answered 500 before issue 9) is replayed on every run, in every profile.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import unique
from tests.factories import OCI_INDEX, OCI_MANIFEST, digest_of, make_artifact, make_image
from tests.oci_errors import assert_documented
from tests.registry_client import push_image
from tests.server import ServerProcess

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CASES: Counter[str] = Counter()


@dataclass(frozen=True)
class Target:
    """What the fuzzers aim at: one repository to read, one to write, known digests."""

    client: httpx.Client
    feed: str
    repo: str  # read-only: an image tagged v1 and a referrer
    scratch: str  # pushes and deletes go here
    manifest: bytes
    manifest_digest: str
    layer_digest: str
    layer: bytes


@pytest.fixture(scope="module")
def target(registry: ServerProcess) -> Iterator[Target]:
    logged_before = len(registry.log())
    started = time.monotonic()
    with httpx.Client(base_url=registry.url, auth=registry.auth, timeout=60) as client:
        feed = unique("fuzz")
        created = client.post(
            "/api/management/feeds/create",
            json={"name": feed, "containerVersioning": True, "permittedTags": ["v*", "*a*a*b"]},
        )
        assert created.status_code == 201, created.text
        repo, scratch = f"{feed}/read/app", f"{feed}/scratch"
        image = make_image(1, unique("fuzz"))
        push_image(client, repo, image, "1.0.0")
        push_image(client, repo, make_artifact("application/vnd.example.sig", b"s", image))
        push_image(client, scratch, image, "1.0.0")
        layer_digest = json.loads(image.manifest)["layers"][0]["digest"]
        yield Target(
            client,
            feed,
            repo,
            scratch,
            image.manifest,
            image.digest,
            layer_digest,
            image.blobs[layer_digest],
        )
    elapsed = time.monotonic() - started
    print(f"\n/v2 fuzz: {sum(CASES.values())} requests in {elapsed:.1f} s")
    for endpoint, count in sorted(CASES.items()):
        print(f"  {count:5d}  {endpoint}")
    CASES.clear()
    new_log = registry.log()[logged_before:]
    assert "failed to handle request" not in new_log, new_log[-5000:]
    assert "Traceback" not in new_log, new_log[-5000:]


def send(target: Target, endpoint: str, method: str, url: str, **kwargs: object) -> httpx.Response:
    """One fuzz request, counted under ``endpoint``; the answer must be a documented one."""
    CASES[endpoint] += 1
    response = target.client.request(method, url, **kwargs)  # type: ignore[arg-type]
    assert_documented(response)
    return response


# --- strategies --------------------------------------------------------------------------------

HUGE = "9" * 5000
# Long values come from .map() so that a strategy's repr (Hypothesis prints it) stays short.
# (httpx sends URLs of at most 64 KiB: a few of these fit in one.)
long_digits = st.sampled_from([4300, 4301, 5000, 12_000]).map(lambda n: "9" * n)
long_text = st.integers(1, 12_000).map(lambda n: "a" * n)
# Text a client could put anywhere: control characters, NUL, non-ASCII digits ("²", "٣"),
# separators of the grammars, traversal, escapes; no lone surrogates (httpx cannot send them).
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text("a0._-/:%@+*!~ \t\x00\x01\x7f\u00b2\u0663\uff11\u00e9\u202e", max_size=40),
    st.sampled_from(["", ".", "..", "../..", "%2e%2e", "%2F", "%00", "\x00"]),
    long_digits,
    long_text,
)
name_component = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)


def names(target: Target) -> st.SearchStrategy[str]:
    valid = st.lists(name_component, min_size=1, max_size=4).map(
        lambda parts: f"{target.feed}/" + "/".join(parts)
    )
    known = st.sampled_from([target.repo, target.scratch, f"{target.feed}/nope", "nofeed/app"])
    return st.one_of(known, valid, hostile_text, st.tuples(known, hostile_text).map("/".join))


tags = st.one_of(
    st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True),
    st.sampled_from(["1.0.0", "latest", "1", "1.0", "v1", "-x", ".x", "aaab"]),
    st.integers(120, 140).map(lambda n: "a" * n),
    hostile_text,
)
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
digests = st.one_of(
    hexes.map(lambda h: f"sha256:{h}"),
    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
    st.tuples(
        st.sampled_from(["sha256", "sha512", "md5", "sha384", "SHA256", "", "a+b"]),
        st.text("0123456789abcdefABCDEFxyz=_-", max_size=200),
    ).map(":".join),
    hostile_text,
)


def references(target: Target) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([target.manifest_digest, "1.0.0"]), tags, digests)


_FIELD_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(range(0x80, 0x100)) | {0x09}


def header_value(parts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """A valid HTTP field value (RFC 9110: visible ASCII, obs-text, inner SP/HTAB) from text.

    Control characters are refused by the HTTP server itself before the app runs
    (``test_control_characters_in_headers_are_refused_by_the_http_server``).
    """
    return parts.map(
        lambda text: bytes(b for b in text.encode("latin-1", "replace") if b in _FIELD_BYTES)
    ).map(lambda value: value.strip(b" \t"))


number = st.one_of(
    st.integers(0, 10_000).map(str),
    st.integers(0, 2**64).map(str),
    long_digits,
    long_digits.map(lambda digits: "0" * len(digits) + "1"),
    st.sampled_from(["-1", "1e3", "0x10", "\u00b2", "\u00b9", "1\u00b2", "\u0663", ""]),
)
range_headers = header_value(
    st.one_of(
        st.tuples(st.sampled_from(["bytes=", "bytes =", "BYTES=", "items=", ""]), number, number)
        .map(lambda t: f"{t[0]}{t[1]}-{t[2]}"),
        st.lists(st.tuples(number, number).map("-".join), min_size=2, max_size=3)
        .map(lambda r: "bytes=" + ",".join(r)),
        hostile_text.map(lambda t: "bytes=" + t),
    )
)  # fmt: skip
content_ranges = header_value(
    st.one_of(
        st.tuples(st.sampled_from(["", "bytes ", "bytes="]), number, number, number)
        .map(lambda t: f"{t[0]}{t[1]}-{t[2]}/{t[3]}"),
        st.tuples(number, number).map("-".join),
        hostile_text,
    )
)  # fmt: skip
query_keys = ["n", "last", "artifactType", "digest", "mount", "from", "tag", "digest-algorithm"]
# At most three long values: with a long name, the URL stays under httpx's 64 KiB (and the
# server's header limit): what is refused there is the HTTP layer's, not a parser's, answer.
queries = st.dictionaries(
    st.one_of(st.sampled_from(query_keys), st.text(max_size=20)),
    st.one_of(number, hostile_text, digests, tags),
    max_size=3,
)


# A raw JSON fragment: what json.dumps cannot write (integers over 4,300 digits) or hostile.
raw_json = st.one_of(
    long_digits,
    long_digits.map(lambda digits: "-" + digits),
    st.sampled_from(["1e999999", "NaN", "-Infinity", "1.5", "-1", "-0", "1E400"]),
    st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 20_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.sampled_from(['"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', "null", "true"]),
    hostile_text.map(json.dumps),
    st.integers(0, 2**70).map(str),
)
MANIFEST_KEYS = ["schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests",
                 "subject", "annotations", "size", "digest", "urls"]  # fmt: skip


@st.composite
def manifests(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few values replaced (at any depth) by hostile JSON, as raw text."""
    document = json.loads(base)
    fragments: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        container: object = document
        while True:  # walk down a random path, then replace or add a member there
            if isinstance(container, dict) and container and draw(st.booleans()):
                key = draw(st.sampled_from(sorted(container)))
                if isinstance(container[key], dict | list):
                    container = container[key]
                    continue
            elif isinstance(container, list) and container and draw(st.booleans()):
                container = container[draw(st.integers(0, len(container) - 1))]
                if isinstance(container, dict | list):
                    continue
            break
        placeholder = f"__raw_{len(fragments)}__"
        fragments.append(draw(raw_json))
        if isinstance(container, dict):
            container[draw(st.sampled_from(MANIFEST_KEYS))] = placeholder
        elif isinstance(container, list):
            container.append(placeholder)
    text = json.dumps(document)
    for i, fragment in enumerate(fragments):
        text = text.replace(json.dumps(f"__raw_{i}__"), fragment, 1)
    return text.encode("utf-8", "surrogatepass")


def path(name: str) -> str:
    return quote(name, safe="/")


# --- the fuzzers -------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
@example(data=None)  # the explicit corpus below runs once before the generated cases
def test_manifest_routes(target: Target, data: st.DataObject | None) -> None:
    if data is None:
        for name, reference in [
            (target.repo, "-bad"),  # 400 TAG_INVALID on GET before: 404 MANIFEST_UNKNOWN now
            (target.repo, "sha256:abc"),
            (target.repo, "a" * 10_000),
            ("a" * 10_000, "1.0.0"),
            (target.repo, "\x00"),
        ]:
            for method in ("GET", "HEAD"):
                url = f"/v2/{path(name)}/manifests/{path(reference)}"
                send(target, f"{method} /v2/<name>/manifests/<reference>", method, url)
        return
    method = data.draw(st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]))
    name = data.draw(names(target))
    if method in ("PUT", "DELETE") and name == target.repo:
        name = target.scratch  # keep the read-only repository intact for the other fuzzers
    reference = data.draw(references(target))
    params = data.draw(st.one_of(st.just({}), st.fixed_dictionaries({"tag": tags})))
    headers = {"Accept": data.draw(header_value(hostile_text | st.just(OCI_MANIFEST)))}
    body = target.manifest if method == "PUT" else None
    if body is not None:
        headers["Content-Type"] = OCI_MANIFEST.encode()
    url = f"/v2/{path(name)}/manifests/{path(reference)}"
    send(target, f"{method} /v2/<name>/manifests/<reference>", method, url,
         params=params, headers=headers, content=body)  # fmt: skip


@FUZZ
@given(data=st.data())
@example(data=None)
def test_manifest_bodies(target: Target, data: st.DataObject | None) -> None:
    corpus = [  # each answered 500 before issue 9
        b'{"schemaVersion": ' + HUGE.encode() + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        target.manifest.replace(b'"size":', b'"size":' + b"9" * 4000, 1),
        target.manifest[:-1] + b',"artifactType":"a/' + b"b" * 300 + b'"}',
        target.manifest[:-1] + b',"artifactType":"a/b\\u0000"}',
    ]
    if data is None:
        for body in corpus:
            send(target, "PUT /v2/<name>/manifests/<reference> (body)", "PUT",
                 f"/v2/{target.scratch}/manifests/9.9.9", content=body,
                 headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        return
    body = data.draw(manifests(target.manifest))
    content_type = data.draw(
        st.sampled_from([OCI_MANIFEST, OCI_INDEX, "application/json", "text/plain", "a/b;c=d"])
    )
    reference = data.draw(st.one_of(st.just(digest_of(body)), tags))
    send(target, "PUT /v2/<name>/manifests/<reference> (body)", "PUT",
         f"/v2/{target.scratch}/manifests/{path(reference)}", content=body,
         headers={"Content-Type": content_type})  # fmt: skip


def _slice_oracle(target: Target, response: httpx.Response) -> None:
    """A 206 is exactly the bytes its Content-Range names; a 200 is the whole blob."""
    if response.request.method != "GET":
        return
    if response.status_code == 200:
        assert response.content == target.layer
    elif response.status_code == 206:
        span, _, size = response.headers["Content-Range"].removeprefix("bytes ").partition("/")
        first, _, last = span.partition("-")
        assert int(size) == len(target.layer)
        assert response.content == target.layer[int(first) : int(last) + 1]


@FUZZ
@given(data=st.data())
@example(data=None)
def test_blob_routes_and_ranges(target: Target, data: st.DataObject | None) -> None:
    endpoint = "<method> /v2/<name>/blobs/<digest>"
    blob = f"/v2/{target.repo}/blobs/{target.layer_digest}"
    if data is None:
        for value in (f"bytes={HUGE}-", f"bytes=-{HUGE}", f"bytes=0-{HUGE}", "bytes=\xb2-"):
            for method in ("GET", "HEAD"):
                response = send(target, endpoint.replace("<method>", method), method, blob,
                                headers={"Range": value.encode("latin-1")})  # fmt: skip
                _slice_oracle(target, response)
        return
    method = data.draw(st.sampled_from(["GET", "GET", "HEAD", "DELETE"]))
    if method == "DELETE" or data.draw(st.booleans()):
        name = data.draw(names(target))
        name = target.scratch if name == target.repo else name
        url = f"/v2/{path(name)}/blobs/{path(data.draw(digests))}"
    else:
        url = blob
    headers = {"Range": data.draw(range_headers)} if data.draw(st.booleans()) else {}
    response = send(target, endpoint.replace("<method>", method), method, url, headers=headers)
    if url == blob:
        _slice_oracle(target, response)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_upload_routes(target: Target, data: st.DataObject | None) -> None:
    uploads = f"/v2/{target.scratch}/blobs/uploads/"
    if data is None:
        for value in (f"{HUGE}-{HUGE}", f"0-{HUGE}", "0-\xb2"):
            location = send(target, "POST /v2/<name>/blobs/uploads/", "POST", uploads).headers[
                "Location"
            ]
            send(target, "PATCH /v2/<name>/blobs/uploads/<id>", "PATCH", location, content=b"x",
                 headers={"Content-Range": value.encode("latin-1")})  # fmt: skip
        return
    step = data.draw(st.sampled_from(["start", "patch", "finish", "status", "cancel"]))
    if step == "start":
        name = data.draw(names(target))
        name = target.scratch if name == target.repo else name
        send(target, "POST /v2/<name>/blobs/uploads/", "POST", f"/v2/{path(name)}/blobs/uploads/",
             params=data.draw(queries), content=data.draw(st.binary(max_size=64)))  # fmt: skip
        return
    location = send(target, "POST /v2/<name>/blobs/uploads/", "POST", uploads).headers["Location"]
    if data.draw(st.booleans()):
        location = uploads + quote(data.draw(hostile_text | st.uuids().map(str)), safe="")
    headers = {"Content-Range": data.draw(content_ranges)} if data.draw(st.booleans()) else {}
    content = data.draw(st.binary(max_size=64))
    if step == "patch":
        send(target, "PATCH /v2/<name>/blobs/uploads/<id>", "PATCH", location,
             headers=headers, content=content)  # fmt: skip
    elif step == "finish":
        params = {"digest": data.draw(st.one_of(st.just(digest_of(content)), digests))}
        send(target, "PUT /v2/<name>/blobs/uploads/<id>", "PUT", location,
             params=params, headers=headers, content=content)  # fmt: skip
    else:
        method = "GET" if step == "status" else "DELETE"
        send(target, f"{method} /v2/<name>/blobs/uploads/<id>", method, location)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_listings_and_referrers(target: Target, data: st.DataObject | None) -> None:
    if data is None:
        for params in (
            {"n": HUGE},
            {"n": "\u00b2"},
            {"last": "\x00"},
            {"n": "1", "last": "a" * 300},
        ):
            send(target, "GET /v2/_catalog", "GET", "/v2/_catalog", params=params)
            send(target, "GET /v2/<name>/tags/list", "GET", f"/v2/{target.repo}/tags/list",
                 params=params)  # fmt: skip
        send(target, "GET /v2/<name>/referrers/<digest>", "GET",
             f"/v2/{target.repo}/referrers/{target.manifest_digest}",
             params={"artifactType": "a/b\x00"})  # fmt: skip
        return
    params = data.draw(queries)
    which = data.draw(st.sampled_from(["catalog", "tags", "referrers", "base", "other"]))
    name = path(data.draw(st.one_of(st.just(target.repo), names(target))))
    if which == "catalog":
        send(target, "GET /v2/_catalog", "GET", "/v2/_catalog", params=params)
    elif which == "tags":
        response = send(target, "GET /v2/<name>/tags/list", "GET", f"/v2/{name}/tags/list",
                        params=params)  # fmt: skip
        if response.status_code == 200 and name == target.repo:
            assert set(response.json()["tags"]) <= {"1.0.0", "1", "1.0", "latest"}
    elif which == "referrers":
        subject = data.draw(st.one_of(st.just(target.manifest_digest), digests))
        send(target, "GET /v2/<name>/referrers/<digest>", "GET",
             f"/v2/{name}/referrers/{path(subject)}", params=params)  # fmt: skip
    elif which == "base":
        send(target, "GET /v2/", "GET", "/v2/", params=params)
    else:
        method = data.draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]))
        rest = path(data.draw(hostile_text))
        send(target, f"{method} /v2/<other>", method, f"/v2/{name}/{rest}", params=params)


@FUZZ
@given(data=st.data())
def test_token_endpoint(target: Target, data: st.DataObject) -> None:
    scope = data.draw(
        st.one_of(
            st.tuples(st.sampled_from(["repository", "registry", ""]), names(target), hostile_text)
            .map(":".join),
            hostile_text,
        )
    )  # fmt: skip
    service = data.draw(st.one_of(st.none(), hostile_text))
    params = {"scope": scope} | ({"service": service} if service is not None else {})
    send(target, "GET /v2/_auth", "GET", "/v2/_auth", params=params)
