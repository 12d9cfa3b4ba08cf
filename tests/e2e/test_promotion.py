"""Promotion between feeds and retagging, through the API, the token flow, skopeo and the CLI."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import unique
from tests.factories import DOCKER_MANIFEST, make_image, make_index, read_oci_layout
from tests.registry_client import assert_error, error_code, push_image, push_manifest
from tests.server import semreg_command
from tests.skopeo import copy, needs_skopeo


def make_feed(client: httpx.Client, versioning: bool = False) -> str:
    name = unique("promo")
    body = {"name": name, "containerVersioning": versioning}
    assert client.post("/api/management/feeds/create", json=body).status_code == 201
    return name


def token(client: httpx.Client, registry, scope: str) -> str:
    response = client.get(
        "/v2/_auth", params={"service": registry.host, "scope": scope}, auth=registry.auth
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def head(client: httpx.Client, name: str, reference: str) -> str | None:
    response = client.head(f"/v2/{name}/manifests/{reference}")
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


@needs_skopeo
def test_promote_multiplatform_with_form_body_and_bearer(registry, client, tmp_path: Path):
    dev, prod = make_feed(client), make_feed(client)
    index = make_index("promo-multi")
    push_image(client, f"{dev}/myorg/app", index, "2.0.0")

    bearer = token(client, registry, f"repository:{dev}/myorg/app:pull")
    response = httpx.post(
        f"{registry.url}/api/promotions/promote",
        data={
            "packageName": "app",
            "groupName": "myorg",
            "version": "2.0.0",
            "fromFeed": dev,
            "toFeed": prod,
            "comments": "Promoted by automation",
        },
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["digest"] == index.digest
    assert record["toVersion"] == "2.0.0"

    out = tmp_path / "out"
    pulled = copy(
        f"docker://{registry.host}/{prod}/myorg/app:2.0.0",
        f"oci:{out}:2.0.0",
        ":".join(registry.auth),
        all_images=True,
    )
    assert pulled.returncode == 0, pulled.stderr
    blobs = read_oci_layout(out)
    assert index.digest in blobs
    assert set(index.all_blobs()) <= set(blobs)
    assert {child.digest for child in index.children} <= set(blobs)

    history = client.get("/api/promotions/list", params={"feed": prod}).json()
    assert [(h["version"], h["comments"], h["fromFeed"]) for h in history] == [
        ("2.0.0", "Promoted by automation", dev)
    ]
    assert history[0]["promotedBy"].startswith("key:")


def test_promote_json_errors_and_answers(client, registry, anonymous_client):
    dev, prod = make_feed(client), make_feed(client)
    image = make_image(2, seed="promo-json")
    push_image(client, f"{dev}/app", image, "1.0.0")
    base = {"packageName": "app", "version": "1.0.0", "fromFeed": dev, "toFeed": prod}

    missing = client.post("/api/promotions/promote", json={"packageName": "app"})
    assert_error(missing, 400, "REQUEST_INVALID")
    assert "fromFeed" in missing.json()["errors"][0]["message"]
    unknown_feed = client.post("/api/promotions/promote", json={**base, "toFeed": "nope-feed"})
    assert unknown_feed.status_code == 404
    unknown_version = client.post("/api/promotions/promote", json={**base, "version": "9.9.9"})
    assert unknown_version.status_code == 404
    assert error_code(unknown_version) == "MANIFEST_UNKNOWN"
    unknown_repo = client.post("/api/promotions/promote", json={**base, "packageName": "nope"})
    assert_error(unknown_repo, 404, "NAME_UNKNOWN")
    assert_error(anonymous_client.post("/api/promotions/promote", json=base), 401, "UNAUTHORIZED")

    # A key that may view dev but not promote into prod is refused with 403.
    viewer = client.post(
        "/api/api-keys/create",
        json={"type": "feed", "feed": dev, "packagePermissions": ["view"]},
    ).text
    refused = httpx.post(
        f"{registry.url}/api/promotions/promote", json=base, headers={"X-ApiKey": viewer}
    )
    assert_error(refused, 403, "DENIED")

    done = client.post("/api/promotions/promote", json=base)
    assert done.status_code == 200
    assert head(client, f"{prod}/app", "1.0.0") == image.digest
    # Blobs came along as links: the target serves them without any upload.
    for digest in image.blobs:
        assert client.head(f"/v2/{prod}/app/blobs/{digest}").status_code == 200


def test_promote_into_versioned_feed(client):
    qa, prod = make_feed(client), make_feed(client, versioning=True)
    images = {v: make_image(1, seed=f"pv-{v}") for v in ("3.4.0", "3.4.1-rc.4", "3.1.0")}
    for version, image in images.items():
        push_image(client, f"{qa}/app", image, version)

    def promote(version: str, **extra: str) -> httpx.Response:
        body = {"packageName": "app", "version": version, "fromFeed": qa, "toFeed": prod}
        return client.post("/api/promotions/promote", json=body | extra)

    assert promote("3.4.0").status_code == 200
    assert promote("3.1.0").status_code == 200
    for tag in ("latest", "3", "3.4"):
        assert head(client, f"{prod}/app", tag) == images["3.4.0"].digest

    # toVersion: promote and retag in one atomic step.
    assert promote("3.4.1-rc.4", toVersion="3.4.1").status_code == 200
    for tag in ("latest", "3", "3.4", "3.4.1"):
        assert head(client, f"{prod}/app", tag) == images["3.4.1-rc.4"].digest
    assert head(client, f"{prod}/app", "3.4.1-rc.4") is None

    # A conflicting release is refused with 409 and nothing in the target changes.
    before = client.get(f"/v2/{prod}/app/tags/list").json()["tags"]
    conflict = promote("3.1.0", toVersion="3.4.0")
    assert_error(conflict, 409, "TAG_INVALID")
    assert images["3.4.0"].digest in conflict.json()["errors"][0]["message"]
    assert client.get(f"/v2/{prod}/app/tags/list").json()["tags"] == before
    assert head(client, f"{prod}/app", "3.4.0") == images["3.4.0"].digest

    # Non-release tags are refused by the target's rules.
    push_image(client, f"{qa}/app", images["3.1.0"], "nightly")
    refused = promote("nightly")
    assert refused.status_code == 400
    assert error_code(refused) == "TAG_INVALID"


def test_concurrent_promotions_keep_virtual_tags_consistent(client):
    qa, prod = make_feed(client), make_feed(client, versioning=True)
    versions = [f"1.{minor}.{patch}" for minor in range(4) for patch in range(4)]
    images = {v: make_image(1, seed=f"cp-{v}") for v in versions}
    for version, image in images.items():
        push_image(client, f"{qa}/app", image, version)

    def promote(version: str) -> int:
        body = {"packageName": "app", "version": version, "fromFeed": qa, "toFeed": prod}
        with httpx.Client(base_url=str(client.base_url), auth=client.auth, timeout=120) as own:
            return own.post("/api/promotions/promote", json=body).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(promote, versions)) == {200}
    assert head(client, f"{prod}/app", "latest") == images["1.3.3"].digest
    assert head(client, f"{prod}/app", "1") == images["1.3.3"].digest
    for minor in range(4):
        assert head(client, f"{prod}/app", f"1.{minor}") == images[f"1.{minor}.3"].digest


def test_seed_retag_by_reupload_obeys_immutability(client, registry):
    feed = make_feed(client, versioning=True)
    name = f"{feed}/app"
    rc, other = (
        make_image(1, seed="seed-rc", docker=True),
        make_image(1, seed="seed-other", docker=True),
    )
    push_image(client, name, rc, "3.4.1-rc.4")
    push_image(client, name, other, "3.4.0")

    bearer = token(client, registry, f"repository:{name}:pull,push")
    headers = {"Authorization": f"Bearer {bearer}"}
    manifest = httpx.get(
        f"{registry.url}/v2/{name}/manifests/3.4.1-rc.4",
        headers=headers | {"Accept": DOCKER_MANIFEST},
    )
    assert manifest.status_code == 200
    put = httpx.put(
        f"{registry.url}/v2/{name}/manifests/3.4.1",
        content=manifest.content,
        headers=headers | {"Content-Type": DOCKER_MANIFEST},
    )
    assert put.status_code == 201
    assert head(client, name, "3.4.1") == rc.digest == head(client, name, "latest")
    # The same flow cannot move an existing release.
    again = push_manifest(client, name, "3.4.0", rc)
    assert_error(again, 409, "TAG_INVALID")


def test_retag_endpoint(client, registry):
    feed = make_feed(client, versioning=True)
    name = f"{feed}/app"
    rc, other = make_image(1, seed="rt-rc"), make_image(1, seed="rt-other")
    push_image(client, name, rc, "2.0.0-rc.1")
    push_image(client, name, other, "1.0.0")

    def create(target: str, tag: str, **extra: str) -> httpx.Response:
        params = {"feed": feed, "repo": "app", "target": target, "name": tag} | extra
        return client.post("/api/containers/tags/create", params=params)

    created = create("2.0.0-rc.1", "2.0.0")
    assert (created.status_code, created.json()["result"]) == (201, "Created")
    assert head(client, name, "latest") == rc.digest
    exists = create(rc.digest, "2.0.0")
    assert (exists.status_code, exists.json()["result"]) == (200, "Exists")
    conflict = create("1.0.0", "2.0.0")
    assert conflict.status_code == 409
    assert error_code(create("1.0.0", "latest")) == "TAG_INVALID"
    assert error_code(create("1.0.0", "v2")) == "TAG_INVALID"
    assert_error(create("9.9.9", "3.0.0"), 404, "MANIFEST_UNKNOWN")

    # force needs the Overwrite/Delete permission.
    adder = client.post(
        "/api/api-keys/create",
        json={"type": "feed", "feed": feed, "packagePermissions": ["view", "add"]},
    ).text
    forced_without = httpx.post(
        f"{registry.url}/api/containers/tags/create",
        params={"feed": feed, "repo": "app", "target": "1.0.0", "name": "2.0.0", "force": "true"},
        headers={"X-ApiKey": adder},
    )
    assert_error(forced_without, 403, "DENIED")
    updated = create("1.0.0", "2.0.0", force="true")
    assert (updated.status_code, updated.json()["result"]) == (200, "Updated")
    assert head(client, name, "2.0.0") == other.digest
    history = client.get("/api/containers/tags/history", params={"feed": feed, "repo": "app"})
    assert [h["action"] for h in history.json()][:2] == ["move", "create"]

    deleted = client.post(
        "/api/containers/tags/delete", params={"feed": feed, "repo": "app", "tag": "2.0.0"}
    )
    assert deleted.status_code == 200
    assert head(client, name, "2.0.0") is None
    gone = client.delete(
        "/api/containers/tags/delete", params={"feed": feed, "repo": "app", "tag": "2.0.0"}
    )
    assert_error(gone, 404, "MANIFEST_UNKNOWN")
    image_gone = client.post(
        "/api/containers/images/delete", params={"feed": feed, "repo": "app", "digest": rc.digest}
    )
    assert image_gone.status_code == 200
    assert_error(client.get(f"/v2/{name}/manifests/{rc.digest}"), 404, "MANIFEST_UNKNOWN")
    again = client.delete(
        "/api/containers/images/delete", params={"feed": feed, "repo": "app", "digest": rc.digest}
    )
    assert_error(again, 404, "MANIFEST_UNKNOWN")


def test_cli_promote_and_tag(client, registry):
    dev, prod = make_feed(client), make_feed(client)
    image = make_image(1, seed="cli-promo")
    push_image(client, f"{dev}/app", image, "1.0.0")
    env = {"SEMREG_URL": registry.url, "SEMREG_API_KEY": registry.admin_key, "PATH": ""}

    def semreg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*semreg_command(), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    result = semreg("promote", f"{dev}/app:1.0.0", "--to", prod, "--comments", "from the cli")
    assert result.returncode == 0, result.stderr
    assert head(client, f"{prod}/app", "1.0.0") == image.digest
    history = semreg("promote", "--history", "--feed", prod)
    assert "from the cli" in history.stdout
    assert semreg("tag", "add", f"{prod}/app:1.0.0", "stable").returncode == 0
    assert head(client, f"{prod}/app", "stable") == image.digest
    assert semreg("tag", "add", f"{prod}/app@{image.digest}", "stable").stdout.startswith("Exists")
    assert semreg("tag", "delete", f"{prod}/app:stable").returncode == 0
    assert head(client, f"{prod}/app", "stable") is None
    assert semreg("image", "delete", f"{prod}/app@{image.digest}").returncode == 0
    assert head(client, f"{prod}/app", "1.0.0") is None
    missing = semreg("image", "delete", f"{prod}/app@{image.digest}")
    assert missing.returncode == 1
    assert "error 404" in missing.stderr
