"""Container Versioning end to end: skopeo pushes into a versioned feed; the rules hold."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import unique
from tests.factories import Image, digest_of, make_image, make_index, write_oci_layout
from tests.registry_client import assert_error, error_code, push_image, push_manifest
from tests.skopeo import copy, needs_skopeo


def create_feed(client: httpx.Client, versioning: bool = True, permitted=()) -> str:
    name = unique("ver")
    body = {"name": name, "containerVersioning": versioning, "permittedTags": list(permitted)}
    response = client.post("/api/management/feeds/create", json=body)
    assert response.status_code == 201, response.text
    return name


def digest_of_tag(client: httpx.Client, name: str, tag: str) -> str | None:
    response = client.head(f"/v2/{name}/manifests/{tag}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]


def virtual(client: httpx.Client, name: str) -> dict[str, str | None]:
    return {t: digest_of_tag(client, name, t) for t in ("latest", "3", "3.4", "3.1", "2", "2.8")}


class Skopeo:
    """Pushes images from an OCI layout with skopeo, one tag at a time."""

    def __init__(self, registry, tmp_path: Path) -> None:
        self.host = registry.host
        self.creds = ":".join(registry.auth)
        self.layout = tmp_path / "layout"
        self.images: dict[str, Image] = {}

    def push(self, name: str, tag: str, seed: str | None = None) -> tuple[int, str]:
        image = self.images.setdefault(seed or tag, make_image(layers=2, seed=seed or tag))
        write_oci_layout(self.layout, {seed or tag: image})
        source = f"oci:{self.layout}:{seed or tag}"
        result = copy(source, f"docker://{self.host}/{name}:{tag}", self.creds)
        return result.returncode, result.stderr

    def digest(self, seed: str) -> str:
        return self.images[seed].digest


@needs_skopeo
def test_virtual_tags_follow_semver_precedence(registry, client, tmp_path):
    feed = create_feed(client, permitted=["stable"])
    name = f"{feed}/myorg/app"
    skopeo = Skopeo(registry, tmp_path)

    assert skopeo.push(name, "3.1.0")[0] == 0
    assert skopeo.push(name, "2.8.4")[0] == 0
    tags = virtual(client, name)
    assert tags["latest"] == skopeo.digest("3.1.0")  # highest version, not the newest push
    assert tags["2"] == tags["2.8"] == skopeo.digest("2.8.4")
    assert tags["3"] == tags["3.1"] == skopeo.digest("3.1.0")

    assert skopeo.push(name, "3.4.0")[0] == 0
    assert virtual(client, name)["3.4"] == skopeo.digest("3.4.0")
    assert skopeo.push(name, "3.4.1")[0] == 0
    tags = virtual(client, name)
    assert tags["3.4"] == tags["3"] == tags["latest"] == skopeo.digest("3.4.1")

    assert skopeo.push(name, "3.4.2-beta.1")[0] == 0
    assert virtual(client, name) == tags  # a pre-release moves nothing

    code, stderr = skopeo.push(name, "v6")
    assert code != 0
    assert "not allowed" in stderr
    assert skopeo.push(name, "stable", seed="3.1.0")[0] == 0

    listed = client.get(f"/v2/{name}/tags/list").json()["tags"]
    assert {"latest", "3", "3.4", "3.1", "2", "2.8", "3.4.1", "stable"} <= set(listed)
    assert "v6" not in listed

    # Pulling "3.4" returns the very manifest of 3.4.1.
    pulled = client.get(f"/v2/{name}/manifests/3.4", headers={"Accept": "*/*"})
    assert pulled.content == skopeo.images["3.4.1"].manifest

    assert client.delete(f"/v2/{name}/manifests/3.4.1").status_code == 202
    tags = virtual(client, name)
    assert tags["3.4"] == tags["3"] == tags["latest"] == skopeo.digest("3.4.0")


@needs_skopeo
def test_existing_tags_survive_enabling_versioning(registry, client, tmp_path):
    feed = create_feed(client, versioning=False)
    name = f"{feed}/legacy"
    skopeo = Skopeo(registry, tmp_path)
    assert skopeo.push(name, "v6-latest")[0] == 0
    assert skopeo.push(name, "1.2.0")[0] == 0
    assert skopeo.push(name, "1.10.0")[0] == 0

    response = client.post(
        f"/api/management/feeds/update/{feed}", json={"containerVersioning": True}
    )
    assert response.status_code == 200
    assert response.json()["containerVersioning"] is True

    assert digest_of_tag(client, name, "v6-latest") == skopeo.digest("v6-latest")
    assert digest_of_tag(client, name, "latest") == skopeo.digest("1.10.0")
    assert digest_of_tag(client, name, "1.2") == skopeo.digest("1.2.0")
    code, stderr = skopeo.push(name, "v6-latest", seed="other")
    assert code != 0
    assert "not allowed" in stderr
    assert client.delete(f"/v2/{name}/manifests/v6-latest").status_code == 202

    # Switching it off leaves the virtual tags as ordinary, movable tags.
    client.post(f"/api/management/feeds/update/{feed}", json={"containerVersioning": False})
    assert digest_of_tag(client, name, "latest") == skopeo.digest("1.10.0")
    assert skopeo.push(name, "latest", seed="1.2.0")[0] == 0
    assert digest_of_tag(client, name, "latest") == skopeo.digest("1.2.0")


def test_release_rules_over_http(client):
    feed = create_feed(client, permitted=["nightly-*", "!nightly-bad*"])
    name = f"{feed}/app"
    first, second = make_image(1, seed="first"), make_image(1, seed="second")
    push_image(client, name, first, "1.0.0")
    push_image(client, name, second)

    refused = push_manifest(client, name, "1.0.0", second)
    assert refused.status_code == 409
    assert error_code(refused) == "TAG_INVALID"
    assert first.digest in refused.json()["errors"][0]["message"]
    assert push_manifest(client, name, "1.0.0", first).status_code == 201  # a retry is fine

    for tag, status in [
        ("v1.2.3", 400),
        ("latest", 400),
        ("1", 400),
        ("1.0", 400),
        ("01.0.0", 400),
        ("1.0.0-01", 400),
        ("nightly-bad-1", 400),
        ("nightly-2026", 201),
        ("1.0.1-rc.1", 201),
        ("V1.0.0", 400),
    ]:
        response = push_manifest(client, name, tag, second)
        assert response.status_code == status, (tag, response.text)
        if status == 400:
            assert error_code(response) == "TAG_INVALID"
    hint = push_manifest(client, name, "v1.2.3", second).json()["errors"][0]["message"]
    assert "did you mean 1.2.3?" in hint

    # Push by digest alone is allowed; the cosign-style fallback tag needs its subject here.
    assert push_manifest(client, name, second.digest, second).status_code == 201
    fallback = first.digest.replace(":", "-") + ".sig"
    assert push_manifest(client, name, fallback, second).status_code == 201
    stranger = "sha256-" + "0" * 64 + ".sig"
    assert error_code(push_manifest(client, name, stranger, second)) == "TAG_INVALID"

    # A deleted release stays reserved until an admin purges it.
    assert client.delete(f"/v2/{name}/manifests/1.0.0").status_code == 202
    assert_error(push_manifest(client, name, "1.0.0", second), 409, "TAG_INVALID")
    assert push_manifest(client, name, "1.0.0", first).status_code == 201  # same digest restores
    assert client.delete(f"/v2/{name}/manifests/1.0.0").status_code == 202
    purge = client.post(
        "/api/containers/releases/purge", params={"feed": feed, "repo": "app", "version": "1.0.0"}
    )
    assert purge.status_code == 200
    assert push_manifest(client, name, "1.0.0", second).status_code == 201

    # Virtual tags cannot be deleted by hand.
    deleted = client.delete(f"/v2/{name}/manifests/latest")
    assert deleted.status_code == 400
    assert error_code(deleted) == "TAG_INVALID"


def test_latest_falls_back_to_prerelease_and_index_works(client):
    feed = create_feed(client)
    name = f"{feed}/app"
    beta = make_image(1, seed="beta")
    push_image(client, name, beta, "2.0.0-beta.1")
    assert digest_of_tag(client, name, "latest") == beta.digest
    assert digest_of_tag(client, name, "2") is None

    index = make_index("ver-index")
    push_image(client, name, index, "1.0.0")
    assert digest_of_tag(client, name, "latest") == index.digest
    assert digest_of_tag(client, name, "1.0") == index.digest


def test_releases_listing(client):
    feed = create_feed(client)
    name = f"{feed}/app"
    for version in ["1.0.0", "1.10.0", "1.2.0", "1.10.0-rc.1"]:
        push_image(client, name, make_image(1, seed=version), version)
    releases = client.get("/api/containers/releases", params={"feed": feed, "repo": "app"}).json()
    assert [r["version"] for r in releases] == ["1.10.0", "1.10.0-rc.1", "1.2.0", "1.0.0"]
    assert releases[0]["virtualTags"] == ["1", "1.10", "latest"]
    assert releases[2]["virtualTags"] == ["1.2"]
    assert all(r["digest"].startswith("sha256:") and r["size"] > 0 for r in releases)


def test_fifty_concurrent_pushes_leave_exact_virtual_tags(client):
    feed = create_feed(client)
    name = f"{feed}/busy"
    versions = [
        f"{major}.{minor}.{patch}" for major in (1, 2) for minor in range(5) for patch in range(5)
    ]
    images = {v: make_image(1, seed=f"busy-{v}") for v in versions}
    shared = {d: b for image in images.values() for d, b in image.blobs.items()}
    for data in shared.values():
        client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest_of(data)}, content=data)

    def push(version: str) -> int:
        with httpx.Client(base_url=str(client.base_url), timeout=120, auth=client.auth) as own:
            return push_manifest(own, name, version, images[version]).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        assert set(pool.map(push, versions)) == {201}

    assert digest_of_tag(client, name, "latest") == images["2.4.4"].digest
    assert digest_of_tag(client, name, "1") == images["1.4.4"].digest
    for major in (1, 2):
        for minor in range(5):
            expected = images[f"{major}.{minor}.4"].digest
            assert digest_of_tag(client, name, f"{major}.{minor}") == expected
