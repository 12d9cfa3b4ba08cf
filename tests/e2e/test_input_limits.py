"""Limits on input (issue 9): references per manifest or index, the page size of listings, and
name and tag lengths, on a server of their own with small limits and on the shared one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import unique
from tests.factories import OCI_INDEX, OCI_MANIFEST, canonical, descriptor, make_image
from tests.oci_errors import assert_refused
from tests.registry_client import push_blob, push_image, push_manifest
from tests.server import ServerProcess

MAX_REFERENCES = 3
MAX_PAGE = 2


@pytest.fixture(scope="module")
def limited(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("limited"),
        database_factory(),
        SEMREG_SERVER__MAX_MANIFEST_REFERENCES=str(MAX_REFERENCES),
        SEMREG_SERVER__MAX_PAGE_SIZE=str(MAX_PAGE),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def lclient(limited) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.url, auth=limited.auth, timeout=60) as c:
        yield c


@pytest.fixture
def lrepo(lclient) -> str:
    feed = unique("limits")
    response = lclient.post("/api/management/feeds/create", json={"name": feed})
    assert response.status_code == 201, response.text
    return f"{feed}/app"


# --- references per manifest or index ----------------------------------------------------------


def test_an_image_at_the_reference_limit_is_accepted(lclient, lrepo):
    image = make_image(MAX_REFERENCES - 1, unique("at-limit"))  # the config is one reference
    push_image(lclient, lrepo, image, "v1")
    assert lclient.get(f"/v2/{lrepo}/manifests/v1").content == image.manifest


def test_an_image_beyond_the_reference_limit_is_manifest_invalid(lclient, lrepo):
    image = make_image(MAX_REFERENCES, unique("beyond-limit"))
    for data in image.blobs.values():
        push_blob(lclient, lrepo, data)
    error = assert_refused(push_manifest(lclient, lrepo, "v1", image), 400, "MANIFEST_INVALID")
    assert error["detail"] == {"references": MAX_REFERENCES + 1, "limit": MAX_REFERENCES}
    assert "server.max_manifest_references" in error["message"]
    assert_refused(lclient.get(f"/v2/{lrepo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_the_limit_is_checked_before_the_references_exist(lclient, lrepo):
    # 10,000 descriptors of absent blobs: refused for their number, not looked up one by one.
    config = b"{}"
    layers = [descriptor("application/octet-stream", str(i).encode()) for i in range(10_000)]
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.empty.v1+json", config),
            "layers": layers,
        }
    )
    response = lclient.put(
        f"/v2/{lrepo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    error = assert_refused(response, 400, "MANIFEST_INVALID")
    assert error["detail"] == {"references": 10_001, "limit": MAX_REFERENCES}


@pytest.mark.parametrize(
    ("children", "accepted"), [(MAX_REFERENCES, True), (MAX_REFERENCES + 1, False)]
)
def test_index_entries_count_against_the_limit(lclient, lrepo, children, accepted):
    images = [make_image(1, unique(f"child-{i}")) for i in range(children)]
    for image in images:
        push_image(lclient, lrepo, image)
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(i.media_type, i.manifest) for i in images],
        }
    )
    response = lclient.put(
        f"/v2/{lrepo}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX}
    )
    if accepted:
        assert response.status_code == 201, response.text
        return
    error = assert_refused(response, 400, "MANIFEST_INVALID")
    assert error["detail"] == {"references": children, "limit": MAX_REFERENCES}


# --- n of listings -----------------------------------------------------------------------------


@pytest.fixture
def five_tags(lclient, lrepo) -> list[str]:
    image = make_image(1, unique("tags"))
    push_image(lclient, lrepo, image)
    tags = [f"t{i}" for i in range(5)]
    for tag in tags:
        assert push_manifest(lclient, lrepo, tag, image).status_code == 201
    return tags


@pytest.mark.parametrize("n", ["3", "100", "9" * 5000])
def test_n_beyond_the_page_size_gets_a_full_page_and_a_link(lclient, lrepo, five_tags, n):
    response = lclient.get(f"/v2/{lrepo}/tags/list", params={"n": n})
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == five_tags[:MAX_PAGE]
    assert response.headers["Link"] == (
        f'</v2/{lrepo}/tags/list?n={MAX_PAGE}&last={five_tags[MAX_PAGE - 1]}>; rel="next"'
    )


def test_following_the_links_lists_every_tag(lclient, lrepo, five_tags):
    seen: list[str] = []
    url = f"/v2/{lrepo}/tags/list?n=1000"
    while url:
        response = lclient.get(url)
        assert response.status_code == 200, response.text
        assert len(response.json()["tags"]) <= MAX_PAGE
        seen += response.json()["tags"]
        link = response.headers.get("Link")
        url = link.split(">", 1)[0].lstrip("<") if link else ""
    assert seen == five_tags


def test_the_catalog_pages_by_the_page_size(lclient, lrepo, five_tags):
    for params in ({}, {"n": "100"}, {"n": "9" * 5000}):
        response = lclient.get("/v2/_catalog", params=params)
        assert response.status_code == 200, response.text
        assert len(response.json()["repositories"]) <= MAX_PAGE
        assert "Link" in response.headers  # the previous tests' feeds are there too


def test_n_below_the_page_size_is_kept(lclient, lrepo, five_tags):
    response = lclient.get(f"/v2/{lrepo}/tags/list", params={"n": "1"})
    assert response.json()["tags"] == five_tags[:1]


# --- name and tag length: fixed by the spec grammar --------------------------------------------

LONG = "a" * 10_000
DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/{long}/manifests/v1"),
        ("HEAD", "/v2/{long}/manifests/v1"),
        ("PUT", "/v2/{long}/manifests/v1"),
        ("DELETE", "/v2/{long}/manifests/v1"),
        ("GET", "/v2/{long}/blobs/{digest}"),
        ("DELETE", "/v2/{long}/blobs/{digest}"),
        ("POST", "/v2/{long}/blobs/uploads/"),
        ("GET", "/v2/{long}/blobs/uploads/00000000-0000-4000-8000-000000000000"),
        ("GET", "/v2/{long}/tags/list"),
        ("GET", "/v2/{long}/referrers/{digest}"),
        ("GET", "/v2/{feed}/{long}/tags/list"),
        ("GET", "/v2/{feed}/a/{long}/manifests/v1"),
    ],
)
def test_a_name_of_10000_characters_is_name_invalid(client, feed, method, path):
    response = client.request(method, path.format(long=LONG, digest=DIGEST, feed=feed))
    assert_refused(response, 400, "NAME_INVALID")


def test_a_name_of_10000_characters_on_api_and_token_endpoints(client, feed):
    response = client.get("/api/containers/releases", params={"feed": feed, "repo": LONG})
    assert_refused(response, 400, "NAME_INVALID")
    response = client.post(
        "/api/containers/tags/create",
        params={"feed": feed, "repo": LONG, "target": "v1", "name": "v2"},
    )
    assert_refused(response, 400, "NAME_INVALID")
    response = client.post(
        f"/v2/{feed}/y/blobs/uploads/", params={"mount": DIGEST, "from": f"{feed}/{LONG}"}
    )
    assert_refused(response, 400, "NAME_INVALID")
    response = client.get("/v2/_auth", params={"scope": f"repository:{feed}/{LONG}:pull"})
    assert_refused(response, 400, "REQUEST_INVALID")
    response = client.post("/api/management/feeds/create", json={"name": LONG})
    assert_refused(response, 400, "REQUEST_INVALID")


def test_a_tag_of_10000_characters(client, repo):
    image = make_image(1, unique("long-tag"))
    push_image(client, repo, image, "v1")
    assert_refused(push_manifest(client, repo, LONG, image), 400, "TAG_INVALID")
    # A pull of it asks for a manifest that cannot exist.
    assert_refused(client.get(f"/v2/{repo}/manifests/{LONG}"), 404, "MANIFEST_UNKNOWN")
    assert_refused(client.head(f"/v2/{repo}/manifests/{LONG}"), 404, "MANIFEST_UNKNOWN")
    assert_refused(client.delete(f"/v2/{repo}/manifests/{LONG}"), 400, "TAG_INVALID")
    response = client.put(
        f"/v2/{repo}/manifests/v2",
        params={"tag": LONG},
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert_refused(response, 400, "TAG_INVALID")
    feed, _, name = repo.partition("/")
    response = client.post(
        "/api/containers/tags/create",
        params={"feed": feed, "repo": name, "target": "v1", "name": LONG},
    )
    assert_refused(response, 400, "TAG_INVALID")
    response = client.get(f"/v2/{repo}/tags/list", params={"last": LONG})
    assert_refused(response, 400, "UNSUPPORTED")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
