"""Listing end to end, over plain httpx: tags/list, the referrers API and the catalog, with their
pagination."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import unique
from tests.factories import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    canonical,
    descriptor,
    make_artifact,
    make_image,
)
from tests.registry_client import error_code, push_blob, push_image, push_manifest

LINK = re.compile(r'^<(?P<url>/v2/[^>]+)>; rel="next"$')
# Byte order puts digits before upper case before '_' before lower case.
TAGS = ["v1", "V1", "1", "10", "2", "A", "a", "B", "b", "Z", "z", "_x", "a-b", "a.b", "a_b", "ab"]


def create_feed(client: httpx.Client) -> str:
    name = unique("feed")
    response = client.post("/api/management/feeds/create", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def push_tags(client: httpx.Client, name: str, tags: list[str], seed: str = "tags") -> str:
    """One image under every tag of ``tags`` (one multi-tag PUT); returns its digest."""
    image = make_image(1, seed)
    push_image(client, name, image)
    response = client.put(
        f"/v2/{name}/manifests/{image.digest}",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
        params=[("tag", t) for t in tags],
    )
    assert response.status_code == 201, response.text
    return image.digest


def next_link(response: httpx.Response) -> str | None:
    """The URL of the ``rel="next"`` Link, checking its format; None when there is none."""
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK.match(link)
    assert match, link
    return match.group("url")


def walk(client: httpx.Client, url: str, key: str) -> tuple[list[str], list[int]]:
    """Follow ``Link`` headers from ``url``; every item of ``key`` in order and each page's size."""
    items: list[str] = []
    sizes: list[int] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        page = response.json()[key] or []
        items += page
        sizes.append(len(page))
        next_url = next_link(response)
        assert len(sizes) < 1000, "pagination does not end"
    return items, sizes


# --- tags/list ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tagged(registry) -> Iterator[str]:
    """A repository holding ``TAGS``, shared by this module's read-only tag listing tests."""
    with httpx.Client(base_url=registry.url, timeout=60, auth=registry.auth) as c:
        repo = f"{create_feed(c)}/tagged"
        push_tags(c, repo, TAGS)
        yield repo


def test_tags_in_lexical_byte_order(client, tagged):
    response = client.get(f"/v2/{tagged}/tags/list")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert body == {"name": tagged, "tags": sorted(TAGS)}
    assert body["tags"][:5] == ["1", "10", "2", "A", "B"]
    assert "Link" not in response.headers


def test_byte_order_is_not_locale_order(client, tagged):
    tags = client.get(f"/v2/{tagged}/tags/list").json()["tags"]
    assert tags.index("Z") < tags.index("_x") < tags.index("a")
    assert tags.index("a-b") < tags.index("a.b") < tags.index("a_b") < tags.index("ab")
    assert tags.index("V1") < tags.index("a") < tags.index("v1")


@pytest.mark.parametrize("n", [1, 3, 4, 5, 15, 16])
def test_tags_pagination_follows_links(client, tagged, n):
    expected = sorted(TAGS)
    first = client.get(f"/v2/{tagged}/tags/list", params={"n": n})
    assert first.status_code == 200
    assert first.json()["tags"] == expected[:n]
    if n < len(TAGS):
        assert first.headers["Link"] == (
            f'</v2/{tagged}/tags/list?n={n}&last={expected[n - 1]}>; rel="next"'
        )
    else:
        assert "Link" not in first.headers

    items, sizes = walk(client, f"/v2/{tagged}/tags/list?n={n}", "tags")
    assert items == expected
    assert len(items) == len(set(items))
    assert all(size == n for size in sizes[:-1])
    assert 1 <= sizes[-1] <= n


def test_tags_page_larger_than_the_list(client, tagged):
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 1000})
    assert response.status_code == 200
    assert response.json()["tags"] == sorted(TAGS)
    assert "Link" not in response.headers


def test_tags_last_without_n(client, tagged):
    response = client.get(f"/v2/{tagged}/tags/list", params={"last": "a"})
    assert response.status_code == 200
    assert response.json()["tags"] == [t for t in sorted(TAGS) if t > "a"]
    assert "Link" not in response.headers


def test_tags_last_between_existing_tags(client, tagged):
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 2, "last": "Aa"})
    assert response.status_code == 200
    assert response.json()["tags"] == ["B", "V1"]
    assert response.headers["Link"] == f'</v2/{tagged}/tags/list?n=2&last=V1>; rel="next"'


def test_tags_n_zero(client, tagged):
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 0})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": tagged, "tags": []}
    assert "Link" not in response.headers


@pytest.mark.parametrize("last", ["z", "zzz", "~"])
def test_tags_last_at_or_beyond_the_end(client, tagged, last):
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": 5, "last": last})
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == []
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10", " 3"])
def test_tags_invalid_n(client, tagged, n):
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": n})
    assert response.status_code == 400, response.text
    assert error_code(response) == "UNSUPPORTED"


def test_tags_of_unknown_repository(client, feed):
    response = client.get(f"/v2/{feed}/nothing/here/tags/list")
    assert response.status_code == 404, response.text
    assert error_code(response) == "NAME_UNKNOWN"


def test_tags_of_unknown_feed(client):
    response = client.get(f"/v2/{unique('nofeed')}/app/tags/list")
    assert response.status_code == 404, response.text
    assert error_code(response) == "NAME_UNKNOWN"


def test_tags_follow_deletes(client, repo):
    digest = push_tags(client, repo, ["a", "b", "c"])
    assert client.delete(f"/v2/{repo}/manifests/b").status_code == 202
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "c"]
    assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert not response.json()["tags"]


def test_untagged_manifests_are_not_listed(client, repo):
    push_image(client, repo, make_image(1, "untagged"))
    push_tags(client, repo, ["only"], seed="tagged")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["only"]


def test_tags_are_per_repository(client, feed):
    push_tags(client, f"{feed}/one", ["x", "y"])
    push_tags(client, f"{feed}/one/two", ["z"])
    assert client.get(f"/v2/{feed}/one/tags/list").json()["tags"] == ["x", "y"]
    assert client.get(f"/v2/{feed}/one/two/tags/list").json() == {
        "name": f"{feed}/one/two",
        "tags": ["z"],
    }


# --- referrers ---------------------------------------------------------------------------------


SBOM = "application/vnd.example.sbom+json"
SIGNATURE = "application/vnd.example.signature"


def push_referrer(client: httpx.Client, name: str, image: Image) -> str:
    for data in image.blobs.values():
        push_blob(client, name, data)
    response = push_manifest(client, name, image.digest, image)
    assert response.status_code == 201, response.text
    return image.digest


def get_referrers(client: httpx.Client, name: str, digest: str, **params: str) -> httpx.Response:
    response = client.get(f"/v2/{name}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return response


def test_referrers_lists_manifests_with_that_subject(client, repo):
    subject = make_image(1, "subject")
    push_image(client, repo, subject, "v1")
    sbom = make_artifact(SBOM, b'{"packages": []}', subject=subject)
    signature = make_artifact(SIGNATURE, b"signature", subject=subject)
    unrelated = make_artifact(SBOM, b"other subject", subject=make_image(1, "elsewhere"))
    for artifact in (sbom, signature, unrelated):
        push_referrer(client, repo, artifact)

    response = get_referrers(client, repo, subject.digest)
    assert "OCI-Filters-Applied" not in response.headers
    manifests = {d["digest"]: d for d in response.json()["manifests"]}
    assert set(manifests) == {sbom.digest, signature.digest}
    for artifact, artifact_type in ((sbom, SBOM), (signature, SIGNATURE)):
        assert manifests[artifact.digest] == {
            "mediaType": OCI_MANIFEST,
            "digest": artifact.digest,
            "size": len(artifact.manifest),
            "artifactType": artifact_type,
            "annotations": {"org.example.kind": "test"},
        }


def test_referrers_filtered_by_artifact_type(client, repo):
    subject = make_image(1, "filtered")
    sboms = [make_artifact(SBOM, f"sbom {i}".encode(), subject=subject) for i in range(2)]
    signature = make_artifact(SIGNATURE, b"sig", subject=subject)
    for artifact in (*sboms, signature):
        push_referrer(client, repo, artifact)

    response = get_referrers(client, repo, subject.digest, artifactType=SBOM)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    listed = response.json()["manifests"]
    assert {d["digest"] for d in listed} == {a.digest for a in sboms}
    assert {d["artifactType"] for d in listed} == {SBOM}

    response = get_referrers(client, repo, subject.digest, artifactType=SIGNATURE)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in response.json()["manifests"]] == [signature.digest]

    response = get_referrers(client, repo, subject.digest, artifactType="application/other")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert response.json()["manifests"] == []


def test_referrer_without_artifact_type_uses_the_config_media_type(client, repo):
    subject = make_image(1, "config-type")
    config = b'{"signed": true}'
    layer = b"payload"
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.example.config.v1+json", config),
            "layers": [descriptor("application/octet-stream", layer)],
            "subject": descriptor(OCI_MANIFEST, subject.manifest),
        }
    )
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    response = client.put(
        f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject.digest

    listed = get_referrers(client, repo, subject.digest).json()["manifests"]
    assert len(listed) == 1
    assert listed[0]["artifactType"] == "application/vnd.example.config.v1+json"
    assert listed[0]["size"] == len(body)
    assert "annotations" not in listed[0]


def test_index_referrer(client, repo):
    subject = make_image(1, "index-subject")
    child = make_image(1, "index-referrer-child")
    push_image(client, repo, child)
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [descriptor(OCI_MANIFEST, child.manifest)],
            "subject": descriptor(OCI_MANIFEST, subject.manifest),
            "annotations": {"org.example.bundle": "yes"},
        }
    )
    response = client.put(
        f"/v2/{repo}/manifests/bundle", content=body, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 201, response.text
    listed = get_referrers(client, repo, subject.digest).json()["manifests"]
    assert listed == [
        {
            "mediaType": OCI_INDEX,
            "digest": response.headers["Docker-Content-Digest"],
            "size": len(body),
            "artifactType": "application/vnd.example.bundle",
            "annotations": {"org.example.bundle": "yes"},
        }
    ]


def test_referrers_follow_deletes(client, repo):
    subject = make_image(1, "deleted-referrer")
    kept = make_artifact(SBOM, b"kept", subject=subject)
    dropped = make_artifact(SBOM, b"dropped", subject=subject)
    push_referrer(client, repo, kept)
    push_referrer(client, repo, dropped)
    assert client.delete(f"/v2/{repo}/manifests/{dropped.digest}").status_code == 202
    listed = get_referrers(client, repo, subject.digest).json()["manifests"]
    assert [d["digest"] for d in listed] == [kept.digest]


def test_referrers_are_per_repository(client, feed):
    subject = make_image(1, "per-repo")
    artifact = make_artifact(SBOM, b"per repo", subject=subject)
    push_referrer(client, f"{feed}/one", artifact)
    push_image(client, f"{feed}/two", subject, "v1")
    assert get_referrers(client, f"{feed}/two", subject.digest).json()["manifests"] == []
    listed = get_referrers(client, f"{feed}/one", subject.digest).json()["manifests"]
    assert [d["digest"] for d in listed] == [artifact.digest]


def test_referrers_of_unknown_subject(client, repo):
    push_image(client, repo, make_image(1, "lonely"), "v1")
    response = get_referrers(client, repo, "sha256:" + "3" * 64)
    assert response.json()["manifests"] == []


def test_referrers_in_unknown_repository(client, feed):
    response = get_referrers(client, f"{feed}/never/pushed", "sha256:" + "3" * 64)
    assert response.json()["manifests"] == []


@pytest.mark.parametrize("digest", ["sha256:abc", "notadigest", "sha256:" + "Z" * 64])
def test_referrers_of_invalid_digest(client, repo, digest):
    push_image(client, repo, make_image(1, "invalid-referrers"), "v1")
    response = client.get(f"/v2/{repo}/referrers/{digest}")
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"


# --- catalog -----------------------------------------------------------------------------------


def catalog_after(client: httpx.Client, prefix: str, n: int) -> tuple[list[str], list[str]]:
    """Walk the catalog from just before ``prefix`` with pages of ``n``; the names starting with
    ``prefix`` and every ``last`` value the Link headers carried."""
    mine: list[str] = []
    lasts: list[str] = []
    response = client.get("/v2/_catalog", params={"n": n, "last": prefix})
    while True:
        assert response.status_code == 200, response.text
        page = response.json()["repositories"]
        assert len(page) <= n
        mine += [name for name in page if name.startswith(prefix)]
        url = next_link(response)
        if url is None or (page and not page[-1].startswith(prefix)):
            return mine, lasts
        assert url.startswith(f"/v2/_catalog?n={n}&last=")
        last = parse_qs(urlsplit(url).query)["last"][0]
        assert last == page[-1]
        lasts.append(last)
        response = client.get(url)


CATALOG_NAMES = ["z0", "a", "a/b", "a-b", "a.b", "a_b", "a/b/c", "b", "a0"]


@pytest.fixture(scope="module")
def cataloged(registry) -> Iterator[list[str]]:
    """A fresh feed with repositories whose byte order differs from a naive order (shared by
    this module's read-only catalog tests)."""
    with httpx.Client(base_url=registry.url, timeout=60, auth=registry.auth) as c:
        feed = create_feed(c)
        image = make_image(1, "catalog")
        names = [f"{feed}/{name}" for name in CATALOG_NAMES]
        for name in names:
            push_image(c, name, image, "v1")
        yield sorted(names)


def test_catalog_lists_repositories_in_lexical_order(client, cataloged):
    response = client.get("/v2/_catalog")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    repositories = response.json()["repositories"]
    assert repositories == sorted(repositories)
    assert len(repositories) == len(set(repositories))
    assert [r for r in repositories if r in cataloged] == cataloged
    feed = cataloged[0].split("/")[0]
    # '-' < '.' < '/' < '0' < '_' in byte order
    assert [r.removeprefix(feed + "/") for r in cataloged][:6] == [
        "a",
        "a-b",
        "a.b",
        "a/b",
        "a/b/c",
        "a0",
    ]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_catalog_pagination_from_last(client, cataloged, n):
    feed = cataloged[0].split("/")[0]
    mine, lasts = catalog_after(client, feed, n)
    assert mine == cataloged
    assert lasts == sorted(set(lasts))
    assert set(cataloged[n - 1 : -1 : n]) <= set(lasts)


def test_catalog_first_page_and_link(client, cataloged):
    response = client.get("/v2/_catalog", params={"n": 2})
    assert response.status_code == 200
    page = response.json()["repositories"]
    assert len(page) == 2
    assert page == sorted(page)
    url = next_link(response)
    assert url is not None
    assert url == f"/v2/_catalog?n=2&last={page[-1].replace('/', '%2F')}"


def test_catalog_walk_yields_every_name_once(client, cataloged):
    names, sizes = walk(client, "/v2/_catalog?n=50", "repositories")
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert [r for r in names if r in cataloged] == cataloged
    assert all(size == 50 for size in sizes[:-1])


def test_catalog_n_zero_and_last_beyond_the_end(client, cataloged):
    response = client.get("/v2/_catalog", params={"n": 0})
    assert response.status_code == 200, response.text
    assert response.json()["repositories"] == []
    assert "Link" not in response.headers
    response = client.get("/v2/_catalog", params={"n": 10, "last": "~"})
    assert response.status_code == 200, response.text
    assert response.json()["repositories"] == []
    assert "Link" not in response.headers


def test_catalog_last_excludes_itself(client, cataloged):
    response = client.get("/v2/_catalog", params={"n": 1, "last": cataloged[0]})
    assert response.status_code == 200
    assert response.json()["repositories"] == [cataloged[1]]


@pytest.mark.parametrize("n", ["-1", "x", "2.0"])
def test_catalog_invalid_n(client, n):
    response = client.get("/v2/_catalog", params={"n": n})
    assert response.status_code == 400, response.text
    assert error_code(response) == "UNSUPPORTED"


def test_catalog_omits_repositories_without_manifests(client):
    feed = create_feed(client)
    push_blob(client, f"{feed}/blobs/only", b"just a blob")
    push_image(client, f"{feed}/kept", make_image(1, "kept"), "v1")
    image = make_image(1, "gone")
    push_image(client, f"{feed}/emptied", image, "v1")
    response = client.delete(f"/v2/{feed}/emptied/manifests/{image.digest}")
    assert response.status_code == 202
    mine, _ = catalog_after(client, feed, 100)
    assert mine == [f"{feed}/kept"]
