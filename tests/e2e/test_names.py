"""Hostile and invalid repository names end to end: refused, and nothing is created.

Requests go through ``http.client`` with the path exactly as written, because httpx normalises
dot segments and some escapes before sending; the server must see ``..``, ``%2e%2e`` and ``%2F``
as a client (or an attacker) sent them.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from dataclasses import dataclass

import httpx
import pytest

from tests.factories import OCI_MANIFEST, digest_of, make_image
from tests.registry_client import push_image

IMAGE = make_image(1, "names")
NAME_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    method: str = "GET"

    def error_code(self) -> str:
        if self.method == "HEAD":  # no body: the status is all there is
            assert self.body == b""
            return {400: "NAME_INVALID", 404: "UNSUPPORTED"}.get(self.status, "?")
        return str(json.loads(self.body)["errors"][0]["code"])


def raw_request(
    registry, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> RawResponse:
    """Send ``path`` byte for byte (no normalisation, no re-escaping)."""
    credentials = base64.b64encode(":".join(registry.auth).encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Authorization", f"Basic {credentials}")
        connection.putheader("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        connection.endheaders(body)
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return RawResponse(response.status, headers, response.read(), method)
    finally:
        connection.close()


def push_attempts(registry, name: str) -> list[tuple[str, RawResponse]]:
    """Everything a client does to push and pull ``IMAGE`` at ``/v2/<name>``, raw."""
    attempts = []
    for digest, data in IMAGE.blobs.items():
        path = f"/v2/{name}/blobs/uploads/?digest={digest}"
        attempts.append((f"POST {path}", raw_request(registry, "POST", path, data)))
    manifest = IMAGE.manifest
    typed = {"Content-Type": OCI_MANIFEST}
    requests = [
        ("POST", f"/v2/{name}/blobs/uploads/", b"", {}),
        ("PUT", f"/v2/{name}/manifests/v1", manifest, typed),
        ("PUT", f"/v2/{name}/manifests/{IMAGE.digest}", manifest, typed),
        ("GET", f"/v2/{name}/manifests/v1", b"", {}),
        ("HEAD", f"/v2/{name}/manifests/{IMAGE.digest}", b"", {}),
        ("GET", f"/v2/{name}/blobs/{digest_of(manifest)}", b"", {}),
        ("GET", f"/v2/{name}/tags/list", b"", {}),
        ("GET", f"/v2/{name}/referrers/{IMAGE.digest}", b"", {}),
        ("DELETE", f"/v2/{name}/manifests/v1", b"", {}),
    ]
    for method, path, body, headers in requests:
        attempts.append((f"{method} {path}", raw_request(registry, method, path, body, headers)))
    return attempts


def catalog(client: httpx.Client) -> list[str]:
    names: list[str] = []
    url: str | None = "/v2/_catalog?n=500"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        names += response.json()["repositories"]
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    return names


def assert_nothing_created(client: httpx.Client, feed: str, allowed: tuple[str, ...] = ()) -> None:
    names = catalog(client)
    assert all(NAME_RE.fullmatch(name) for name in names), [
        n for n in names if not NAME_RE.fullmatch(n)
    ]
    assert [n for n in names if n.startswith(f"{feed}/")] == sorted(f"{feed}/{a}" for a in allowed)
    assert not [n for n in names if feed in n and not n.startswith(f"{feed}/")]


# Raw names (between "/v2/" and the endpoint suffix); "{F}" is this test's feed.
HOSTILE = [
    "{F}/../{F}/app",
    "{F}/app/..",
    "{F}/%2e%2e/app",
    "{F}/%2E%2E/{F}/app",
    "{F}/.%2e/app",
    "../{F}/app",
    "%2e%2e/{F}/app",
    "{F}/team%2Fapp",
    "{F}/team%2fapp",
    "{F}%2Fapp",
    "{F}/team/app%2F",
    "%2F{F}/app",
    "{F}/Team/app",
    "{F}/team/APP",
    "{F}//app",
    "{F}/team//app",
    "{F}/app/",
    "/{F}/app",
    "//{F}/app",
    "{F}/./app",
    "{F}/app/.",
    "{F}/a..b",
    "{F}/app..",
    "{F}/..app",
    "{F}/.app",
    "{F}/-app",
    "{F}/app-",
    "{F}/app_",
    "{F}/a___b",
    "{F}/a%00b",
    "{F}/a%5Cb",
    "{F}/a%20b",
    "{F}/caf%C3%A9",
    "{F}/app%3Fx=1",
    "{F}/app%23frag",
    "{F}/app%25",
    "{F}/app:1",
    "{F}",
    "{F}/" + "a" * 250,
    "{F}/" + "/".join(["abcdefghi"] * 26),
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_name_is_refused_and_creates_nothing(registry, client, feed, raw):
    name = raw.replace("{F}", feed)
    attempts = push_attempts(registry, name)
    for request, response in attempts:
        assert response.status == 400, (request, response.status, response.body[:300])
        assert response.error_code() == "NAME_INVALID", (request, response.body[:300])
        assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert_nothing_created(client, feed)


def test_upper_case_feed_is_name_invalid_not_unknown(registry, client, feed):
    for request, response in push_attempts(registry, f"{feed.upper()}/app"):
        assert response.status == 400, (request, response.body[:300])
        assert response.error_code() == "NAME_INVALID", request
    assert_nothing_created(client, feed)


def test_feed_only_name_is_refused(registry, client, feed):
    """``/v2/<feed>/manifests/x``: a feed is not a repository; nothing routes to the feed."""
    for request, response in push_attempts(registry, feed):
        assert response.status == 400, (request, response.body[:300])
        assert response.error_code() == "NAME_INVALID", request
    detail = raw_request(registry, "GET", f"/v2/{feed}/tags/list")
    assert feed in json.loads(detail.body)["errors"][0]["message"]
    assert_nothing_created(client, feed)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/..",
        "/v2/../",
        "/v2/%2e%2e/",
        "/v2/../../etc/passwd",
        "/v2/..%2F..%2Fetc%2Fpasswd",
        "/v2/{F}/app%2Fmanifests%2Fv1",
        "/v2/{F}/app%2Ftags%2Flist",
    ],
)
def test_paths_that_cannot_route(registry, client, feed, path):
    path = path.replace("{F}", feed)
    for method in ("GET", "PUT", "DELETE"):
        body = IMAGE.manifest if method == "PUT" else b""
        response = raw_request(registry, method, path, body, {"Content-Type": OCI_MANIFEST})
        assert response.status in (400, 404), (method, path, response.status, response.body)
        expected = "NAME_INVALID" if response.status == 400 else "UNSUPPORTED"
        assert response.error_code() == expected, (method, path, response.body)
    assert_nothing_created(client, feed)


def test_encoded_slash_does_not_reach_an_existing_repository(registry, client, feed):
    """``team%2Fapp`` must not be another spelling of ``team/app``."""
    push_image(client, f"{feed}/team/app", IMAGE, "v1")
    for raw in (f"{feed}/team%2Fapp", f"{feed}%2Fteam%2Fapp"):
        for method in ("GET", "HEAD", "DELETE"):
            response = raw_request(registry, method, f"/v2/{raw}/manifests/v1")
            assert response.status == 400, (method, raw, response.status, response.body)
        response = raw_request(registry, "GET", f"/v2/{raw}/tags/list")
        assert response.status == 400, (raw, response.body)
        assert response.error_code() == "NAME_INVALID"
    assert client.get(f"/v2/{feed}/team/app/manifests/v1").status_code == 200
    assert_nothing_created(client, feed, ("team/app",))


def test_traversal_does_not_reach_an_existing_repository(registry, client, feed):
    push_image(client, f"{feed}/app", IMAGE, "v1")
    for raw in (f"{feed}/x/../app", f"{feed}/x/%2e%2e/app", f"{feed}/./app"):
        response = raw_request(registry, "GET", f"/v2/{raw}/manifests/v1")
        assert response.status == 400, (raw, response.body)
        assert response.error_code() == "NAME_INVALID"
        response = raw_request(registry, "DELETE", f"/v2/{raw}/manifests/{IMAGE.digest}")
        assert response.status == 400, (raw, response.body)
    assert client.get(f"/v2/{feed}/app/manifests/v1").status_code == 200
    assert_nothing_created(client, feed, ("app",))


# --- the length limit --------------------------------------------------------------------------


def name_of_length(feed: str, length: int, component: int) -> str:
    """``feed/...`` of exactly ``length`` characters, in components of at most ``component``."""
    rest = length - len(feed) - 1
    parts: list[str] = []
    while rest > 0:
        take = min(component, rest)
        if 0 < rest - take < 2:  # never leave a one-character tail that needs a '/' of its own
            take -= 1
        parts.append("a" * take)
        rest -= take + 1
    name = f"{feed}/" + "/".join(parts)
    assert len(name) == length, (len(name), length)
    return name


@pytest.mark.parametrize("component", [300, 10])
def test_name_of_255_characters_is_accepted_and_256_refused(registry, client, feed, component):
    longest = name_of_length(feed, 255, component)
    push_image(client, longest, IMAGE, "v1")
    response = client.get(f"/v2/{longest}/manifests/v1")
    assert response.status_code == 200
    assert response.content == IMAGE.manifest

    too_long = name_of_length(feed, 256, component)
    for request, result in push_attempts(registry, too_long):
        assert result.status == 400, (request, result.body[:300])
        assert result.error_code() == "NAME_INVALID", request
    assert_nothing_created(client, feed, (longest.removeprefix(f"{feed}/"),))


@pytest.mark.parametrize(
    "valid", ["app", "a/b/c/d", "my-app", "my--app", "my_app", "my__app", "my.app", "0/1", "a1b2"]
)
def test_grammar_edges_that_are_valid(client, feed, valid):
    name = f"{feed}/{valid}"
    push_image(client, name, IMAGE, "v1")
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200, response.text
    assert response.json() == {"name": name, "tags": ["v1"]}
