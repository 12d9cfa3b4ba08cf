"""ProGet users' PowerShell seed scripts, replayed with a plain HTTP client, in both token modes.

``GetDockerToken`` asks /v2/_auth for one scope with Basic ``api:<key>``;
``RepackageContainerImage`` GETs a Docker schema 2 manifest and PUTs the same bytes under a new
version. The scripts reuse one token (obtained with scope ``pull``, sometimes for the other feed)
for reading from one feed and writing to another. By default semreg holds a token to its
``access`` claim (strict); with ``SEMREG_AUTH__TOKEN_ACTS_AS_PRINCIPAL=true`` a token on /v2 acts
as the key that obtained it, and the scripts run verbatim. On /api a token always acts as its
principal.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.auth_helpers import (
    bearer,
    create_feed,
    create_key,
    create_user,
    grant,
    listed_key,
)
from tests.conftest import unique
from tests.factories import DOCKER_MANIFEST, Image, make_image
from tests.registry_client import error_code, push_blob, push_image
from tests.server import ServerProcess

PACKAGE = "team/app"


# --- the scripts, as close to the PowerShell as Python allows ------------------------------------


def get_docker_token(
    package_name: str, feed: str, action_to_authorize: str, api_key: str, base_url: str
) -> str | None:
    """``GetDockerToken``: the service is the base URL without its scheme."""
    service = base_url[len("http://") :]
    base64_auth_info = base64.b64encode(f"api:{api_key}".encode("ascii")).decode()
    response = httpx.get(
        f"{base_url}/v2/_auth?service={service}"
        f"&scope=repository:{feed}/{package_name}:{action_to_authorize}",
        headers={"Authorization": f"Basic {base64_auth_info}"},
    )
    if response.reason_phrase == "OK":
        return str(response.json()["token"])
    return None


def get_manifest(
    base_url: str, feed: str, package_name: str, version: str, bearer_token: str
) -> httpx.Response:
    return httpx.get(
        f"{base_url}/v2/{feed}/{package_name}/manifests/{version}",
        headers={"Authorization": f"Bearer {bearer_token}", "accept": DOCKER_MANIFEST},
    )


def put_manifest(
    base_url: str, feed: str, package_name: str, version: str, bearer_token: str, body: bytes
) -> httpx.Response:
    return httpx.put(
        f"{base_url}/v2/{feed}/{package_name}/manifests/{version}",
        content=body,
        headers={"Authorization": f"Bearer {bearer_token}", "content-type": DOCKER_MANIFEST},
    )


# --- the setting the scripts run in --------------------------------------------------------------


@dataclass
class Scene:
    base_url: str
    from_feed: str
    to_feed: str
    api_key: str
    key_name: str
    image: Image


def set_scene(server: ServerProcess, admin: httpx.Client) -> Scene:
    """A Docker image at 1.2.0-rc.1 in both feeds; a key that may view ``from`` and push to ``to``.

    The blobs are already in ``to`` (ProGet's promotion call copies them before the retag).
    """
    from_feed, to_feed = create_feed(admin), create_feed(admin)
    image = make_image(layers=2, seed=unique("seed-script"), docker=True)
    for feed in (from_feed, to_feed):
        push_image(admin, f"{feed}/{PACKAGE}", image, "1.2.0-rc.1")
    user, _ = create_user(admin)
    grant(admin, user, from_feed, "view")
    grant(admin, user, to_feed, "view", "add")
    key_name = unique("seed-key")
    key = create_key(admin, type="personal", user=user, displayName=key_name)
    return Scene(server.url, from_feed, to_feed, key, key_name, image)


def exists(admin: httpx.Client, feed: str, version: str) -> bool:
    response = admin.get(f"/v2/{feed}/{PACKAGE}/manifests/{version}")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


# --- strict mode (the default) -------------------------------------------------------------------


def test_repackage_script_in_strict_mode_needs_a_pull_push_token(registry, client):
    s = set_scene(registry, client)
    pull = get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url)
    assert pull is not None

    manifest = get_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0-rc.1", pull)
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Content-Type"] == DOCKER_MANIFEST
    assert manifest.content == s.image.manifest

    # The script's reuse of its pull token for the PUT: the token does not grant push.
    reused = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", pull, manifest.content)
    assert reused.status_code == 403, reused.text
    assert error_code(reused) == "DENIED"
    assert reused.headers["WWW-Authenticate"] == (
        f'Bearer realm="{registry.url}/v2/_auth",service="{registry.host}",'
        f'scope="repository:{s.to_feed}/{PACKAGE}:pull,push",error="insufficient_scope"'
    )
    assert not exists(client, s.to_feed, "1.2.0")

    # A PUT needs pull and push (by method, as distribution decides): a push-only token is short.
    push_only = get_docker_token(PACKAGE, s.to_feed, "push", s.api_key, s.base_url)
    assert push_only is not None
    short = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", push_only, manifest.content)
    assert short.status_code == 403, short.text
    assert error_code(short) == "DENIED"
    assert short.headers["WWW-Authenticate"] == reused.headers["WWW-Authenticate"]
    assert not exists(client, s.to_feed, "1.2.0")

    push = get_docker_token(PACKAGE, s.to_feed, "pull,push", s.api_key, s.base_url)
    assert push is not None
    retagged = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", push, manifest.content)
    assert retagged.status_code == 201, retagged.text
    assert retagged.headers["Docker-Content-Digest"] == s.image.digest
    assert client.get(f"/v2/{s.to_feed}/{PACKAGE}/manifests/1.2.0").content == s.image.manifest


def test_token_for_one_feed_does_not_open_the_other_in_strict_mode(registry, client):
    s = set_scene(registry, client)
    # "GetDockerToken -feed $toFeed ... pull", then a GET from $fromFeed with that token.
    to_token = get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url)
    assert to_token is not None
    read = get_manifest(s.base_url, s.from_feed, PACKAGE, "1.2.0-rc.1", to_token)
    assert read.status_code == 403, read.text
    assert error_code(read) == "DENIED"

    # A token obtained for the source feed does not write to the target feed either.
    from_token = get_docker_token(PACKAGE, s.from_feed, "pull", s.api_key, s.base_url)
    assert from_token is not None
    body = get_manifest(s.base_url, s.from_feed, PACKAGE, "1.2.0-rc.1", from_token).content
    assert body == s.image.manifest
    written = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", from_token, body)
    assert written.status_code == 403
    assert error_code(written) == "DENIED"
    assert not exists(client, s.to_feed, "1.2.0")

    # One token per feed and method does the promotion.
    push = get_docker_token(PACKAGE, s.to_feed, "pull,push", s.api_key, s.base_url)
    assert push is not None
    assert put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", push, body).status_code == 201


def test_api_takes_a_token_as_its_principal_in_strict_mode(registry, client):
    s = set_scene(registry, client)
    token = get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url)
    assert token is not None
    assert_api_acts_as_principal(s, token)


def assert_api_acts_as_principal(s: Scene, token: str) -> None:
    with httpx.Client(base_url=s.base_url, headers=bearer(token), timeout=60) as http:
        listed = http.get("/api/management/feeds/list")
        assert listed.status_code == 200, listed.text
        names = {feed["name"] for feed in listed.json()}
        assert {s.from_feed, s.to_feed} <= names
        # The token was asked for "to"; on /api it reads "from" as its key may.
        releases = http.get(
            "/api/containers/releases", params={"feed": s.from_feed, "repo": PACKAGE}
        )
        assert releases.status_code == 200, releases.text
        # ... and no more than its key may.
        created = http.post("/api/management/feeds/create", json={"name": unique("feed")})
        assert created.status_code == 403
        assert error_code(created) == "DENIED"


# --- principal mode ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def principal_mode(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("principal-mode"),
        database_factory(),
        SEMREG_AUTH__TOKEN_ACTS_AS_PRINCIPAL="true",
        SEMREG_AUTH__PRINCIPAL_CACHE_SECONDS="1",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def principal_admin(principal_mode: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=principal_mode.url, auth=principal_mode.auth, timeout=60) as c:
        yield c


def test_seed_scripts_run_verbatim_in_principal_mode(principal_mode, principal_admin):
    s = set_scene(principal_mode, principal_admin)
    # $bearerToken = GetDockerToken -feed $toFeed -packageName $packageName
    #                               -actionToAuthorize "pull" -apiKey $apiKey ...
    bearer_token = get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url)
    assert bearer_token is not None

    # $manifest = Invoke-WebRequest "$progetBaseUrl/v2/$fromFeed/$packageName/manifests/..."
    manifest = get_manifest(s.base_url, s.from_feed, PACKAGE, "1.2.0-rc.1", bearer_token)
    assert manifest.status_code == 200, manifest.text
    assert manifest.content == s.image.manifest
    assert manifest.headers["Content-Type"] == DOCKER_MANIFEST

    # RepackageContainerImage with the same token: GET from $toFeed, PUT to $toFeed.
    again = get_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0-rc.1", bearer_token)
    assert again.status_code == 200
    put = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0", bearer_token, again.content)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == s.image.digest
    assert principal_admin.get(f"/v2/{s.to_feed}/{PACKAGE}/manifests/1.2.0").content == (
        s.image.manifest
    )

    # A token obtained for the source feed writes to the target feed: its key may.
    from_token = get_docker_token(PACKAGE, s.from_feed, "pull", s.api_key, s.base_url)
    assert from_token is not None
    body = get_manifest(s.base_url, s.from_feed, PACKAGE, "1.2.0-rc.1", from_token).content
    put = put_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.1", from_token, body)
    assert put.status_code == 201, put.text


def test_principal_mode_still_holds_tokens_to_their_key(principal_mode, principal_admin):
    s = set_scene(principal_mode, principal_admin)
    token = get_docker_token(PACKAGE, s.to_feed, "pull,push", s.api_key, s.base_url)
    assert token is not None

    # The key may only view the source feed: writing there is denied whatever the token says.
    refused = put_manifest(s.base_url, s.from_feed, PACKAGE, "1.2.0", token, s.image.manifest)
    assert refused.status_code == 403, refused.text
    assert error_code(refused) == "DENIED"
    assert not exists(principal_admin, s.from_feed, "1.2.0")
    deleted = httpx.delete(
        f"{s.base_url}/v2/{s.to_feed}/{PACKAGE}/manifests/{s.image.digest}",
        headers=bearer(token),
    )
    assert deleted.status_code == 403
    assert error_code(deleted) == "DENIED"

    # A feed nobody granted stays closed.
    other = create_feed(principal_admin)
    push_blob(principal_admin, f"{other}/{PACKAGE}", next(iter(s.image.blobs.values())))
    closed = httpx.get(f"{s.base_url}/v2/{other}/{PACKAGE}/tags/list", headers=bearer(token))
    assert closed.status_code == 403
    assert error_code(closed) == "DENIED"

    # Revoking the key ends its tokens once the principal cache (1 s here) expires.
    key_id = listed_key(principal_admin, s.key_name)["id"]
    assert principal_admin.delete("/api/api-keys/delete", params={"id": key_id}).status_code == 200
    time.sleep(1.2)
    revoked = get_manifest(s.base_url, s.to_feed, PACKAGE, "1.2.0-rc.1", token)
    assert revoked.status_code == 401
    assert error_code(revoked) == "UNAUTHORIZED"
    assert get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url) is None


def test_api_takes_a_token_as_its_principal_in_principal_mode(principal_mode, principal_admin):
    s = set_scene(principal_mode, principal_admin)
    token = get_docker_token(PACKAGE, s.to_feed, "pull", s.api_key, s.base_url)
    assert token is not None
    assert_api_acts_as_principal(s, token)


def test_repackage_container_image_runs_verbatim_in_principal_mode(principal_mode, principal_admin):
    """RepackageContainerImage from the ProGet page: promote, then GET and PUT the manifest,
    all with one token obtained for ``pull`` on the target feed."""
    from_feed, to_feed = create_feed(principal_admin), create_feed(principal_admin)
    image = make_image(layers=2, seed=unique("repackage"), docker=True)
    push_image(principal_admin, f"{from_feed}/{PACKAGE}", image, "3.4.1-rc.4")
    user, _ = create_user(principal_admin)
    grant(principal_admin, user, from_feed, "view")
    grant(principal_admin, user, to_feed, "view", "add", "promote")
    api_key = create_key(principal_admin, type="personal", user=user)
    base = principal_mode.url

    bearer_token = get_docker_token(PACKAGE, to_feed, "pull", api_key, base)
    assert bearer_token is not None
    # Invoke-WebRequest -Method POST -Body $postBody (a hashtable: a form body).
    promoted = httpx.post(
        f"{base}/api/promotions/promote",
        data={
            "packageName": PACKAGE,
            "groupName": "",
            "version": "3.4.1-rc.4",
            "fromFeed": from_feed,
            "toFeed": to_feed,
            "comments": "Promoted by automation",
        },
        headers={"Authorization": f"Bearer {bearer_token}"},
    )
    assert promoted.status_code == 200, promoted.text
    manifest = get_manifest(base, to_feed, PACKAGE, "3.4.1-rc.4", bearer_token)
    assert manifest.status_code == 200
    put = put_manifest(base, to_feed, PACKAGE, "3.4.1", bearer_token, manifest.content)
    assert put.status_code == 201, put.text
    assert principal_admin.get(f"/v2/{to_feed}/{PACKAGE}/manifests/3.4.1").content == image.manifest
    history = principal_admin.get("/api/promotions/list", params={"feed": to_feed}).json()
    assert [(h["version"], h["comments"]) for h in history] == [
        ("3.4.1-rc.4", "Promoted by automation")
    ]
