"""Feed management end to end: the /api/management/feeds endpoints over httpx, their effect on
/v2, and the ``semreg feed`` CLI run as a subprocess against the real server."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from tests.conftest import unique
from tests.factories import make_image
from tests.registry_client import error_code, push_blob, push_image, push_manifest
from tests.server import semreg_command

API = "/api/management/feeds"
IMAGE = make_image(1, "feeds")


def create(client: httpx.Client, name: str, **fields: object) -> httpx.Response:
    return client.post(f"{API}/create", json={"name": name, "feedType": "docker", **fields})


def get(client: httpx.Client, name: str) -> dict[str, object]:
    response = client.get(f"{API}/get/{name}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def update(client: httpx.Client, name: str, **fields: object) -> httpx.Response:
    return client.post(f"{API}/update/{name}", json=fields)


def catalog_names(client: httpx.Client, feed: str) -> list[str]:
    """Catalog entries of ``feed``, walking every page after ``feed``."""
    names: list[str] = []
    url: str | None = f"/v2/_catalog?n=100&last={feed}"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()["repositories"]
        names += [n for n in page if n.startswith(f"{feed}/")]
        if page and not page[-1].startswith(feed):
            break
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    return names


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert response.json()["errors"][0]["message"]


# --- create ------------------------------------------------------------------------------------


def test_create_returns_the_feed(client):
    name = unique("feed")
    response = create(client, name, description="team images")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name
    assert body["feedType"] == "docker"
    assert body["active"] is True
    assert body["description"] == "team images"
    assert body["containerVersioning"] is False
    assert body["permittedTags"] == []
    assert datetime.fromisoformat(body["created"]).tzinfo is not None
    assert get(client, name) == body


def test_create_defaults_and_inactive(client):
    name = unique("feed")
    response = client.post(f"{API}/create", json={"name": name, "active": False})
    assert response.status_code == 201, response.text
    assert response.json()["feedType"] == "docker"
    assert response.json()["active"] is False
    assert response.json()["description"] is None


def test_create_ignores_unknown_properties(client):
    name = unique("feed")
    response = create(client, name, dropPath="x", endpointUrl="https://example.invalid")
    assert response.status_code == 201, response.text
    assert "dropPath" not in response.json()


def test_duplicate_is_a_conflict(client, feed):
    response = create(client, feed)
    assert_error(response, 409, "CONFLICT")
    assert get(client, feed)["active"] is True


@pytest.mark.parametrize(
    "name",
    ["Upper", "has space", "a/b", "-lead", "trail-", "dot..dot", "a" * 65, "caf\u00e9", "..", ""],
)
def test_invalid_name_is_refused(client, name):
    response = create(client, name)
    assert_error(response, 400, "REQUEST_INVALID")
    names = [f["name"] for f in client.get(f"{API}/list").json()]
    assert name not in names


def test_longest_feed_name(client):
    prefix = unique("f")
    name = prefix + "x" * (64 - len(prefix))
    assert len(name) == 64
    assert create(client, name).status_code == 201
    push_image(client, f"{name}/app", IMAGE, "v1")


@pytest.mark.parametrize("feed_type", ["npm", "nuget", "", "Docker"])
def test_unsupported_feed_type(client, feed_type):
    name = unique("feed")
    response = create(client, name, feedType=feed_type)
    assert_error(response, 400, "REQUEST_INVALID")
    assert_error(client.get(f"{API}/get/{name}"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "body", [{}, {"feedType": "docker"}, {"name": 5}, {"name": None}, {"name": "ok", "active": "x"}]
)
def test_malformed_create_body(client, body):
    response = client.post(f"{API}/create", json=body)
    assert_error(response, 400, "REQUEST_INVALID")


def test_create_requires_credentials(anonymous_client):
    response = anonymous_client.post(f"{API}/create", json={"name": unique("feed")})
    assert_error(response, 401, "UNAUTHORIZED")


# --- list and get ------------------------------------------------------------------------------


def test_list_contains_every_feed_with_its_properties(client):
    active, inactive = unique("feed"), unique("feed")
    assert create(client, active).status_code == 201
    assert create(client, inactive, active=False).status_code == 201
    response = client.get(f"{API}/list")
    assert response.status_code == 200, response.text
    feeds = {f["name"]: f for f in response.json()}
    assert feeds[active]["active"] is True
    assert feeds[inactive]["active"] is False
    assert feeds[active] == get(client, active)
    assert all(f["feedType"] == "docker" for f in feeds.values())


def test_get_unknown_feed(client):
    assert_error(client.get(f"{API}/get/{unique('nofeed')}"), 404, "NAME_UNKNOWN")


# --- update ------------------------------------------------------------------------------------


def test_update_keeps_omitted_and_null_properties(client):
    name = unique("feed")
    assert create(client, name, description="first").status_code == 201
    before = get(client, name)

    response = update(client, name)
    assert response.status_code == 200, response.text
    assert response.json() == before

    response = update(client, name, description=None, active=None)
    assert response.status_code == 200, response.text
    assert response.json() == before

    response = update(client, name, description="second")
    assert response.status_code == 200, response.text
    assert response.json() == {**before, "description": "second"}

    response = update(client, name, active=False)
    assert response.json() == {**before, "description": "second", "active": False}
    assert get(client, name) == response.json()


def test_update_unknown_feed(client):
    assert_error(update(client, unique("nofeed"), active=False), 404, "NAME_UNKNOWN")


def test_update_with_a_malformed_body(client, feed):
    response = update(client, feed, active="sometimes")
    assert_error(response, 400, "REQUEST_INVALID")
    assert get(client, feed)["active"] is True


# --- an inactive feed --------------------------------------------------------------------------


def test_inactive_feed_refuses_pushes_and_pulls_until_reenabled(client, feed):
    name = f"{feed}/app"
    push_image(client, name, IMAGE, "v1")
    other = make_image(1, "feeds-inactive")
    layer = next(iter(IMAGE.blobs))

    assert update(client, feed, active=False).json()["active"] is False
    refused = [
        client.get(f"/v2/{name}/manifests/v1"),
        client.get(f"/v2/{name}/manifests/{IMAGE.digest}"),
        client.get(f"/v2/{name}/blobs/{layer}"),
        client.get(f"/v2/{name}/tags/list"),
        client.get(f"/v2/{name}/referrers/{IMAGE.digest}"),
        client.post(f"/v2/{name}/blobs/uploads/"),
        client.post(
            f"/v2/{name}/blobs/uploads/",
            params={"digest": next(iter(other.blobs))},
            content=next(iter(other.blobs.values())),
        ),
        push_manifest(client, name, "v2", IMAGE),
        client.delete(f"/v2/{name}/manifests/v1"),
        client.delete(f"/v2/{feed}/new/repo/manifests/{IMAGE.digest}"),
    ]
    for response in refused:
        assert_error(response, 403, "DENIED")
    head = client.head(f"/v2/{name}/manifests/v1")
    assert head.status_code == 403

    assert update(client, feed, active=True).json()["active"] is True
    response = client.get(f"/v2/{name}/manifests/v1")
    assert response.status_code == 200, response.text
    assert response.content == IMAGE.manifest
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["v1"]
    push_image(client, name, other, "v2")
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["v1", "v2"]


def test_inactive_feed_keeps_its_content(client, feed):
    name = f"{feed}/app"
    push_image(client, name, IMAGE, "v1")
    assert update(client, feed, active=False).status_code == 200
    assert get(client, feed)["active"] is False
    assert update(client, feed, active=True).status_code == 200
    response = client.get(f"/v2/{name}/manifests/v1")
    assert response.status_code == 200
    assert response.content == IMAGE.manifest


def test_feed_created_inactive_refuses_the_first_push(client):
    feed = unique("feed")
    assert create(client, feed, active=False).status_code == 201
    response = client.post(
        f"/v2/{feed}/app/blobs/uploads/",
        params={"digest": next(iter(IMAGE.blobs))},
        content=next(iter(IMAGE.blobs.values())),
    )
    assert_error(response, 403, "DENIED")
    assert_error(push_manifest(client, f"{feed}/app", "v1", IMAGE), 403, "DENIED")


# --- delete ------------------------------------------------------------------------------------


def test_delete_an_empty_feed(client):
    name = unique("feed")
    assert create(client, name).status_code == 201
    response = client.delete(f"{API}/delete/{name}")
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": name}
    assert_error(client.get(f"{API}/get/{name}"), 404, "NAME_UNKNOWN")
    assert name not in [f["name"] for f in client.get(f"{API}/list").json()]
    assert_error(client.get(f"/v2/{name}/app/tags/list"), 404, "NAME_UNKNOWN")


def test_delete_a_feed_holding_only_blobs(client, feed):
    push_blob(client, f"{feed}/app", b"a blob, no manifest")
    response = client.delete(f"{API}/delete/{feed}")
    assert response.status_code == 200, response.text
    assert_error(client.get(f"{API}/get/{feed}"), 404, "NAME_UNKNOWN")


def test_delete_unknown_feed(client):
    assert_error(client.delete(f"{API}/delete/{unique('nofeed')}"), 404, "NAME_UNKNOWN")


def test_delete_a_feed_holding_an_image_needs_force(client, feed):
    push_image(client, f"{feed}/team/app", IMAGE, "v1")
    push_image(client, f"{feed}/other", IMAGE, "v1")
    assert catalog_names(client, feed) == [f"{feed}/other", f"{feed}/team/app"]

    for params in ({}, {"force": "false"}):
        response = client.delete(f"{API}/delete/{feed}", params=params)
        assert_error(response, 409, "CONFLICT")
        assert "force" in response.json()["errors"][0]["message"]
    assert get(client, feed)["name"] == feed
    assert client.get(f"/v2/{feed}/team/app/manifests/v1").status_code == 200

    response = client.delete(f"{API}/delete/{feed}", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert_error(client.get(f"{API}/get/{feed}"), 404, "NAME_UNKNOWN")
    assert catalog_names(client, feed) == []
    assert_error(client.get(f"/v2/{feed}/team/app/manifests/v1"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{feed}/team/app/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{feed}/team/app/blobs/{IMAGE.digest}"), 404, "NAME_UNKNOWN")
    assert_error(push_manifest(client, f"{feed}/team/app", "v1", IMAGE), 404, "NAME_UNKNOWN")


def test_a_recreated_feed_starts_empty(client, feed):
    push_image(client, f"{feed}/app", IMAGE, "v1")
    response = client.delete(f"{API}/delete/{feed}", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert create(client, feed).status_code == 201
    assert_error(client.get(f"/v2/{feed}/app/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{feed}/app/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{feed}/app/blobs/{next(iter(IMAGE.blobs))}"), 404, "BLOB_UNKNOWN")
    assert catalog_names(client, feed) == []
    # pushing again needs the blobs again: nothing of the old feed is reachable
    assert_error(push_manifest(client, f"{feed}/app", "v1", IMAGE), 400, "MANIFEST_BLOB_UNKNOWN")
    push_image(client, f"{feed}/app", IMAGE, "v1")
    assert catalog_names(client, feed) == [f"{feed}/app"]


def test_delete_after_the_images_are_gone_needs_no_force(client, feed):
    push_image(client, f"{feed}/app", IMAGE, "v1")
    assert client.delete(f"/v2/{feed}/app/manifests/{IMAGE.digest}").status_code == 202
    response = client.delete(f"{API}/delete/{feed}")
    assert response.status_code == 200, response.text


# --- the CLI -----------------------------------------------------------------------------------


def semreg(registry, *args: str, key: str | None = "admin") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
    if key is not None:
        env["SEMREG_API_KEY"] = registry.admin_key if key == "admin" else key
    command = [*semreg_command(), *args, "--url", registry.url]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def assert_cli_error(result: subprocess.CompletedProcess[str], status: int) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error {status}: "), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_feed_lifecycle(registry, client):
    name = unique("cli")
    result = semreg(registry, "feed", "create", name, "--description", "made by the CLI")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["name"] == name
    assert created["feedType"] == "docker"
    assert created["active"] is True
    assert created["description"] == "made by the CLI"
    assert get(client, name) == created

    result = semreg(registry, "feed", "list")
    assert result.returncode == 0, result.stderr
    assert name in result.stdout.splitlines()

    result = semreg(registry, "feed", "get", name)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == created

    result = semreg(registry, "feed", "update", name, "--inactive")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {**created, "active": False}
    assert get(client, name)["active"] is False
    assert get(client, name)["description"] == "made by the CLI"
    result = semreg(registry, "feed", "list")
    assert f"{name}  (inactive)" in result.stdout.splitlines()
    assert_error(client.get(f"/v2/{name}/app/tags/list"), 403, "DENIED")

    result = semreg(registry, "feed", "update", name, "--active")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["active"] is True

    result = semreg(registry, "feed", "delete", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"deleted feed {name}"
    assert_error(client.get(f"{API}/get/{name}"), 404, "NAME_UNKNOWN")


def test_cli_refuses_to_delete_a_feed_holding_an_image(registry, client):
    name = unique("cli")
    assert semreg(registry, "feed", "create", name).returncode == 0
    push_image(client, f"{name}/app", IMAGE, "v1")

    result = semreg(registry, "feed", "delete", name)
    assert_cli_error(result, 409)
    assert name in result.stderr
    assert "--force" in result.stderr
    assert get(client, name)["name"] == name
    assert client.get(f"/v2/{name}/app/manifests/v1").status_code == 200

    result = semreg(registry, "feed", "delete", name, "--force")
    assert result.returncode == 0, result.stderr
    assert_error(client.get(f"{API}/get/{name}"), 404, "NAME_UNKNOWN")
    assert catalog_names(client, name) == []


def test_cli_errors_are_readable(registry, client):
    existing = unique("cli")
    assert create(client, existing).status_code == 201
    calls = {
        409: (("feed", "create", existing), "admin"),
        400: (("feed", "create", "Not Valid"), "admin"),
        404: (("feed", "get", unique("nofeed")), "admin"),
        401: (("feed", "list"), "semreg_wrong-key"),
    }
    with ThreadPoolExecutor(len(calls)) as pool:
        results = {
            status: pool.submit(semreg, registry, *args, key=key)
            for status, (args, key) in calls.items()
        }
    for status, result in results.items():
        assert_cli_error(result.result(), status)
    assert_cli_error(semreg(registry, "feed", "create", unique("cli"), key=None), 401)
