"""Real clients through the token flow with feed keys: skopeo and the oras Python SDK.

skopeo follows the Docker token specification; the oras SDK fetches a new token only after a 403,
so its second repository and its push after a pull need the server's insufficient-scope answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import oras.client
import pytest

from tests.auth_helpers import claims, create_feed, feed_key, forge, seed_image
from tests.factories import make_image, read_oci_layout, write_oci_layout
from tests.registry_client import assert_error
from tests.skopeo import copy, needs_skopeo


@pytest.fixture
def no_stored_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo must not find credentials in the environment's auth files."""
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


@needs_skopeo
def test_skopeo_pushes_and_pulls_with_a_feed_key(
    registry, client, feed, tmp_path, no_stored_credentials
):
    layout = write_oci_layout(tmp_path / "src", {"one": make_image(2, seed="skopeo-key")})
    key = feed_key(client, feed, "view", "add")
    target = f"docker://{registry.host}/{feed}/team/app:1.0.0"

    pushed = copy(f"oci:{layout}:one", target, f"api:{key}")
    assert pushed.returncode == 0, pushed.stderr
    assert client.get(f"/v2/{feed}/team/app/manifests/1.0.0").status_code == 200

    out = tmp_path / "out"
    pulled = copy(target, f"oci:{out}:one", f"api:{key}")
    assert pulled.returncode == 0, pulled.stderr
    assert read_oci_layout(out) == read_oci_layout(layout)


@needs_skopeo
def test_skopeo_with_a_pull_only_key_pulls_but_cannot_push(
    registry, client, feed, tmp_path, no_stored_credentials
):
    seeded = make_image(1, seed="skopeo-reader")
    layout = write_oci_layout(tmp_path / "src", {"one": seeded})
    admin = ":".join(registry.auth)
    repo = f"docker://{registry.host}/{feed}/app"
    assert copy(f"oci:{layout}:one", f"{repo}:1.0.0", admin).returncode == 0
    key = feed_key(client, feed, "view")

    out = tmp_path / "out"
    pulled = copy(f"{repo}:1.0.0", f"oci:{out}:one", f"api:{key}")
    assert pulled.returncode == 0, pulled.stderr
    assert read_oci_layout(out) == read_oci_layout(layout)

    other = write_oci_layout(tmp_path / "other", {"two": make_image(1, seed="skopeo-denied")})
    pushed = copy(f"oci:{other}:two", f"{repo}:2.0.0", f"api:{key}")
    assert pushed.returncode != 0
    # skopeo went through the token flow: its pull,push token was granted pull only.
    assert f"denied: the token does not grant push on {feed}/app" in pushed.stderr, pushed.stderr
    assert_error(client.get(f"/v2/{feed}/app/manifests/2.0.0"), 404, "MANIFEST_UNKNOWN")


@needs_skopeo
def test_skopeo_anonymous_pull_only_from_an_anonymous_view_feed(
    registry, client, tmp_path, no_stored_credentials
):
    public, private = create_feed(client, anonymous_view=True), create_feed(client)
    image = make_image(1, seed="skopeo-anonymous")
    layout = write_oci_layout(tmp_path / "src", {"one": image})
    admin = ":".join(registry.auth)
    for feed in (public, private):
        seeded = copy(f"oci:{layout}:one", f"docker://{registry.host}/{feed}/app:1.0.0", admin)
        assert seeded.returncode == 0, seeded.stderr

    out = tmp_path / "public"
    pulled = copy(f"docker://{registry.host}/{public}/app:1.0.0", f"oci:{out}:one")
    assert pulled.returncode == 0, pulled.stderr
    assert read_oci_layout(out) == read_oci_layout(layout)

    refused = copy(f"docker://{registry.host}/{private}/app:1.0.0", f"oci:{tmp_path / 'p'}:one")
    assert refused.returncode != 0
    # Its anonymous token was granted nothing on the private feed.
    assert f"denied: the token does not grant pull on {private}/app" in refused.stderr, (
        refused.stderr
    )


def test_oras_sdk_refreshes_its_token_across_repositories(registry, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    feed = create_feed(client)
    key = feed_key(client, feed, "view", "add")
    # A repository that exists before the SDK touches it: pulled first, pushed to later.
    seed_image(client, f"{feed}/preloaded", "0.1.0")
    sdk = oras.client.OrasClient(insecure=True)
    sdk.auth.set_basic_auth("api", key)
    host = registry.host

    def artifact(name: str) -> Path:
        path = tmp_path / name
        path.write_text(f"{name}\n" * 200)
        return path

    first, second, third = artifact("first.txt"), artifact("second.txt"), artifact("third.txt")
    assert sdk.push(target=f"{host}/{feed}/one:1.0.0", files=[first.name]).status_code == 201
    files = sdk.pull(target=f"{host}/{feed}/one:1.0.0", outdir=str(tmp_path / "a"))
    assert [Path(f).read_bytes() for f in files] == [first.read_bytes()]

    # The token for "one" does not open "two": the 403 makes the SDK fetch a new one.
    assert sdk.push(target=f"{host}/{feed}/two:1.0.0", files=[second.name]).status_code == 201
    files = sdk.pull(target=f"{host}/{feed}/one:1.0.0", outdir=str(tmp_path / "b"))
    assert [Path(f).read_bytes() for f in files] == [first.read_bytes()]

    # Pull first (a pull-only token), then push to the same repository.
    tags = sdk.get_tags(f"{host}/{feed}/preloaded")
    assert tags == ["0.1.0"]
    assert claims(sdk.auth.token)["access"] == [
        {"type": "repository", "name": f"{feed}/preloaded", "actions": ["pull"]}
    ]
    assert sdk.push(target=f"{host}/{feed}/preloaded:1.0.0", files=[third.name]).status_code == 201
    files = sdk.pull(target=f"{host}/{feed}/preloaded:1.0.0", outdir=str(tmp_path / "c"))
    assert [Path(f).read_bytes() for f in files] == [third.read_bytes()]
    files = sdk.pull(target=f"{host}/{feed}/two:1.0.0", outdir=str(tmp_path / "d"))
    assert [Path(f).read_bytes() for f in files] == [second.read_bytes()]

    assert client.get(f"/v2/{feed}/preloaded/tags/list").json()["tags"] == ["0.1.0", "1.0.0"]


def test_oras_sdk_with_a_key_for_another_feed_is_refused(registry, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine, theirs = create_feed(client), create_feed(client)
    sdk = oras.client.OrasClient(insecure=True)
    sdk.auth.set_basic_auth("api", feed_key(client, mine, "view", "add"))
    payload = tmp_path / "payload.txt"
    payload.write_text("nope\n")
    with pytest.raises(ValueError, match="DENIED"):
        sdk.push(target=f"{registry.host}/{theirs}/app:1.0.0", files=[payload.name])
    assert_error(client.get(f"/v2/{theirs}/app/tags/list"), 404, "NAME_UNKNOWN")


def test_oras_sdk_with_an_expired_token_needs_a_new_token(registry, client, tmp_path, monkeypatch):
    # An expired token gets 401 with a Bearer challenge, as the Docker token specification and
    # RFC 6750 say. The oras SDK re-sends the token it holds after a 401 (it only asks for a new
    # one after a 403), so a long-lived SDK object must drop its token: docs/auth.md says so.
    monkeypatch.chdir(tmp_path)
    feed = create_feed(client)
    sdk = oras.client.OrasClient(insecure=True)
    sdk.auth.set_basic_auth("api", feed_key(client, feed, "view", "add"))
    payload = tmp_path / "payload.txt"
    payload.write_text("long-lived\n")
    target = f"{registry.host}/{feed}/app:1.0.0"
    assert sdk.push(target=target, files=[payload.name]).status_code == 201

    current = claims(sdk.auth.token)
    now = int(time.time())
    expired = forge(
        registry,
        current["access"],
        sub=current["sub"],
        pri=current["pri"],
        iat=now - 400,
        nbf=now - 400,
        exp=now - 100,
    )
    response = client.get(
        f"/v2/{feed}/app/manifests/1.0.0", auth=None, headers={"Authorization": f"Bearer {expired}"}
    )
    assert_error(response, 401, "UNAUTHORIZED")
    assert f'scope="repository:{feed}/app:pull"' in response.headers["WWW-Authenticate"]

    sdk.auth.token = None  # what a long-lived client does: forget the token, get a fresh one
    files = sdk.pull(target=target, outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() for f in files] == [payload.read_bytes()]
