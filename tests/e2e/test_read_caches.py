"""Two processes, one registry: a change made through one is seen through the other at once.

Each process keeps answers in its own caches (``metadata/hot.py``, verified tokens, manifest
bytes). Two servers on two ports share one database and one data folder, as two replicas do,
so every request is known to reach the process it was sent to. Every check reads through the
process that did *not* make the change, on the very next request, after warming its caches
with the old answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth_helpers import bearer, token_for
from tests.conftest import unique
from tests.factories import OCI_MANIFEST, make_image
from tests.registry_client import assert_error, push_image
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def pair(database_factory, tmp_path_factory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    folder = tmp_path_factory.mktemp("replicas")
    database = database_factory()
    first = ServerProcess(folder / "shared", database).start()
    second = ServerProcess(folder / "shared", database, admin_key=first.admin_key)
    second.log_path = folder / "second.log"
    second.start()
    yield first, second
    second.stop()
    first.stop()


@pytest.fixture
def clients(pair) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    first, second = pair
    with (
        httpx.Client(base_url=first.url, auth=first.auth, timeout=60) as a,
        httpx.Client(base_url=second.url, auth=second.auth, timeout=60) as b,
    ):
        yield a, b


def versioned_feed(admin: httpx.Client) -> str:
    name = unique("feed")
    body = {"name": name, "containerVersioning": True, "anonymousView": True}
    assert admin.post("/api/management/feeds/create", json=body).status_code == 201
    return name


def digest_of_tag(http: httpx.Client, repo: str, tag: str, token: str) -> str | None:
    response = http.get(
        f"/v2/{repo}/manifests/{tag}", headers={**bearer(token), "Accept": OCI_MANIFEST}
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]


def test_virtual_tags_moved_through_one_process_are_seen_through_the_other(clients):
    a, b = clients
    repo = f"{versioned_feed(a)}/app"
    tokens = {http: token_for(http, f"repository:{repo}:pull") for http in (a, b)}
    versions = ["1.0.0", "1.0.1", "1.1.0", "2.0.0-rc.1", "1.1.1", "2.0.0", "2.0.1", "1.2.0"]
    pushed: dict[str, str] = {}
    for n, version in enumerate(versions):
        writer, reader = (a, b) if n % 2 == 0 else (b, a)
        token = tokens[reader]
        # Warm the reader's caches with what is there before the push.
        for tag in ("latest", "1", "2"):
            digest_of_tag(reader, repo, tag, token)
        pushed[version] = push_image(writer, repo, make_image(1, seed=f"{repo}-{version}"), version)
        released = [v for v in pushed if "-" not in v]
        highest = max(released, key=lambda v: tuple(int(p) for p in v.split(".")))
        assert digest_of_tag(reader, repo, version, token) == pushed[version]
        assert digest_of_tag(reader, repo, "latest", token) == pushed[highest], version
        for major in ("1", "2"):
            mine = [v for v in released if v.startswith(f"{major}.")]
            expected = (
                pushed[max(mine, key=lambda v: tuple(int(p) for p in v.split(".")))]
                if mine
                else None
            )
            assert digest_of_tag(reader, repo, major, token) == expected, (version, major)


def test_deletions_through_one_process_are_seen_through_the_other(clients):
    a, b = clients
    image = make_image(1, seed=unique("deleted"))
    plain = unique("plain")
    assert a.post("/api/management/feeds/create", json={"name": plain}).status_code == 201
    repo = f"{plain}/deleted"
    digest = push_image(a, repo, image, "1.0.0")
    layer = next(iter(image.blobs))
    # Bearer tokens take the fast path (api/fastpath.py), Basic credentials the routes.
    token = bearer(token_for(b, f"repository:{repo}:pull"))
    for headers in (token, {}):
        # Warm b: tag, digest and blob all answered.
        assert b.get(f"/v2/{repo}/manifests/1.0.0", headers=headers).status_code == 200
        assert b.head(f"/v2/{repo}/manifests/{digest}", headers=headers).status_code == 200
        assert b.head(f"/v2/{repo}/blobs/{layer}", headers=headers).status_code == 200

    assert a.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
    assert_error(b.head(f"/v2/{repo}/blobs/{layer}", headers=token), 404, "")
    assert_error(b.get(f"/v2/{repo}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
    assert a.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    assert_error(b.get(f"/v2/{repo}/manifests/1.0.0", headers=token), 404, "MANIFEST_UNKNOWN")
    assert_error(b.head(f"/v2/{repo}/manifests/{digest}", headers=token), 404, "")
    assert_error(b.get(f"/v2/{repo}/manifests/1.0.0"), 404, "MANIFEST_UNKNOWN")
    assert_error(b.get(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_a_feed_switched_off_or_closed_to_anonymous_is_so_at_once_on_the_other(clients):
    a, b = clients
    feed = versioned_feed(a)
    repo = f"{feed}/app"
    push_image(a, repo, make_image(1, seed=unique("switched")), "1.0.0")
    with httpx.Client(base_url=b.base_url, timeout=60) as anonymous:
        assert anonymous.get(f"/v2/{repo}/manifests/1.0.0").status_code == 200
        update = a.post(f"/api/management/feeds/update/{feed}", json={"anonymousView": False})
        assert update.status_code == 200, update.text
        assert_error(anonymous.get(f"/v2/{repo}/manifests/1.0.0"), 401, "UNAUTHORIZED")
    assert b.get(f"/v2/{repo}/manifests/1.0.0").status_code == 200
    assert a.post(f"/api/management/feeds/update/{feed}", json={"active": False}).status_code == 200
    assert_error(b.get(f"/v2/{repo}/manifests/1.0.0"), 403, "DENIED")
