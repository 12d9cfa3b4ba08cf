"""API keys, users and per-feed permissions: the /api management calls, every credential form on
/api, what each kind of key may do on /v2, brute-force throttling, and secrets kept out of logs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.auth_helpers import (
    api,
    bearer,
    create_feed,
    create_key,
    create_user,
    feed_key,
    grant,
    granted,
    listed_key,
    request_token,
    scope,
    seed_image,
    token_for,
)
from tests.conftest import unique
from tests.factories import make_image
from tests.registry_client import assert_error, error_code, push_image
from tests.server import ServerProcess

# --- /api/api-keys ------------------------------------------------------------------------------


def test_key_text_is_only_in_the_create_answer(client, feed):
    name = unique("ci")
    text = create_key(
        client,
        type="feed",
        feed=feed,
        packagePermissions=["view", "add"],
        displayName=name,
        description="built by CI",
    )
    assert len(text) >= len("semreg_") + 40  # 256 random bits, url-safe base64

    listing = client.get("/api/api-keys/list")
    assert listing.status_code == 200
    assert text not in listing.text
    entry = listed_key(client, name)
    assert entry["type"] == "feed"
    assert entry["feed"] == feed
    assert entry["packagePermissions"] == ["add", "view"]
    assert entry["systemApis"] == []
    assert entry["description"] == "built by CI"
    assert entry["expiration"] is None
    assert entry["prefix"] == text[:11]

    second = create_key(client, type="feed", feed=feed, packagePermissions=["view"])
    assert second != text


def test_revoking_a_key_by_post_or_delete(client, anonymous_client, feed):
    for method in ("POST", "DELETE"):
        name = unique("revoke")
        text = create_key(
            client, type="feed", feed=feed, packagePermissions=["view"], displayName=name
        )
        key_id = listed_key(client, name)["id"]
        assert anonymous_client.get("/v2/", auth=api(text)).status_code == 200

        response = client.request(method, "/api/api-keys/delete", params={"id": key_id})
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted": key_id}
        assert all(k["id"] != key_id for k in client.get("/api/api-keys/list").json())

        refused = anonymous_client.get("/v2/", auth=api(text))
        assert refused.status_code == 401
        assert error_code(refused) == "UNAUTHORIZED"

        again = client.request(method, "/api/api-keys/delete", params={"id": key_id})
        assert again.status_code == 404
        assert error_code(again) == "NAME_UNKNOWN"


@pytest.mark.parametrize(
    ("spec", "status", "code"),
    [
        ({"type": "bogus", "systemApis": ["feeds"]}, 400, "REQUEST_INVALID"),
        ({"type": "feed", "packagePermissions": ["view"]}, 400, "REQUEST_INVALID"),
        ({"type": "feed", "feed": "FEED", "packagePermissions": []}, 400, "REQUEST_INVALID"),
        ({"type": "feed", "feed": "FEED", "packagePermissions": ["fly"]}, 400, "REQUEST_INVALID"),
        ({"type": "system"}, 400, "REQUEST_INVALID"),
        ({"type": "system", "systemApis": ["root"]}, 400, "REQUEST_INVALID"),
        ({"type": "personal"}, 400, "REQUEST_INVALID"),
        ({"type": "personal", "user": "nobody-here"}, 404, "NAME_UNKNOWN"),
        (
            {"type": "feed", "feed": "no-such-feed", "packagePermissions": ["view"]},
            404,
            "NAME_UNKNOWN",
        ),
    ],
)
def test_invalid_key_specifications_are_refused(client, feed, spec, status, code):
    body = {k: (feed if v == "FEED" else v) for k, v in spec.items()}
    response = client.post("/api/api-keys/create", json=body)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert "semreg_" not in response.text


def test_expired_key_is_refused_and_unexpired_key_works(client, anonymous_client, feed):
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expired = create_key(
        client, type="feed", feed=feed, packagePermissions=["view"], expiration=past
    )
    valid = create_key(
        client, type="feed", feed=feed, packagePermissions=["view"], expiration=future
    )

    assert anonymous_client.get("/v2/", auth=api(valid)).status_code == 200
    for attempt in (
        anonymous_client.get("/v2/", auth=api(expired)),
        request_token(anonymous_client, scope(f"{feed}/app", "pull"), auth=api(expired)),
        anonymous_client.get(f"/api/management/feeds/get/{feed}", headers={"X-ApiKey": expired}),
    ):
        assert attempt.status_code == 401, attempt.text
        assert error_code(attempt) == "UNAUTHORIZED"


def test_only_administrators_create_keys_and_users(client, anonymous_client, feed):
    system_feeds = create_key(client, type="system", systemApis=["feeds"])
    for credentials in (api(system_feeds), api(feed_key(client, feed, "view", "add"))):
        key = anonymous_client.post(
            "/api/api-keys/create",
            json={"type": "system", "systemApis": ["full-control"]},
            auth=credentials,
        )
        assert key.status_code == 403, key.text
        assert error_code(key) == "DENIED"
        assert "semreg_" not in key.text
        user = anonymous_client.post(
            "/api/users/create",
            json={"name": unique("user"), "password": "long-enough"},
            auth=credentials,
        )
        assert user.status_code == 403
        assert error_code(user) == "DENIED"

    for path in ("/api/api-keys/list", "/api/users/list"):
        response = anonymous_client.get(path)
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="semreg"'
    response = anonymous_client.post(
        "/api/api-keys/create", json={"type": "system", "systemApis": ["full-control"]}
    )
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"


def test_a_feed_key_lists_no_other_keys(client, anonymous_client, feed):
    key = feed_key(client, feed, "view")
    response = anonymous_client.get("/api/api-keys/list", auth=api(key))
    assert response.status_code == 200
    assert response.json() == []


def test_system_key_with_feeds_manages_feeds_only(client, anonymous_client):
    key = create_key(client, type="system", systemApis=["feeds"])
    name = unique("feed")
    created = anonymous_client.post(
        "/api/management/feeds/create", json={"name": name}, auth=api(key)
    )
    assert created.status_code == 201, created.text
    updated = anonymous_client.post(
        f"/api/management/feeds/update/{name}", json={"description": "x"}, auth=api(key)
    )
    assert updated.status_code == 200
    assert updated.json()["description"] == "x"
    # Managing feeds is not a package permission.
    pull = anonymous_client.get(f"/v2/{name}/app/tags/list", auth=api(key))
    assert pull.status_code == 403
    assert error_code(pull) == "DENIED"
    purge = anonymous_client.post(
        "/api/containers/releases/purge",
        params={"feed": name, "repo": "app", "version": "1.0.0"},
        auth=api(key),
    )
    assert_error(purge, 403, "DENIED")


def test_anonymous_and_feed_keys_cannot_create_feeds(client, anonymous_client, feed):
    body = {"name": unique("feed")}
    anonymous = anonymous_client.post("/api/management/feeds/create", json=body)
    assert anonymous.status_code == 401
    assert error_code(anonymous) == "UNAUTHORIZED"
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="semreg"'
    keyed = anonymous_client.post(
        "/api/management/feeds/create",
        json=body,
        auth=api(feed_key(client, feed, "view", "add", "promote", "delete")),
    )
    assert keyed.status_code == 403
    assert error_code(keyed) == "DENIED"
    assert_error(client.get(f"/api/management/feeds/get/{body['name']}"), 404, "NAME_UNKNOWN")


# --- credential forms on /api --------------------------------------------------------------------


def test_every_credential_form_on_api_acts_as_the_key(client, anonymous_client):
    dev, prod = create_feed(client), create_feed(client)
    key = feed_key(client, dev, "view")
    token = token_for(anonymous_client, scope(f"{dev}/app", "pull"), auth=api(key))
    forms: dict[str, dict[str, object]] = {
        "X-ApiKey header": {"headers": {"X-ApiKey": key}},
        "key parameter": {"params": {"key": key}},
        "Basic api:key": {"auth": api(key)},
        "Basic with any user name": {"auth": ("ci-bot", key)},
        "Bearer key": {"headers": bearer(key)},
        "Bearer token": {"headers": bearer(token)},
    }
    assert_error(anonymous_client.get(f"/api/management/feeds/get/{dev}"), 401, "UNAUTHORIZED")
    for form, kwargs in forms.items():
        mine = anonymous_client.get(f"/api/management/feeds/get/{dev}", **kwargs)
        assert mine.status_code == 200, (form, mine.text)
        assert mine.json()["name"] == dev
        other = anonymous_client.get(f"/api/management/feeds/get/{prod}", **kwargs)
        assert other.status_code == 403, (form, other.text)
        assert error_code(other) == "DENIED"
        listed = anonymous_client.get("/api/management/feeds/list", **kwargs)
        assert listed.status_code == 200
        names = {f["name"] for f in listed.json()}
        assert dev in names
        assert prod not in names


def test_wrong_key_in_every_form_is_refused_on_api(client, anonymous_client, feed):
    wrong = "semreg_" + "x" * 43
    for kwargs in (
        {"headers": {"X-ApiKey": wrong}},
        {"params": {"key": wrong}},
        {"auth": api(wrong)},
        {"headers": bearer(wrong)},
        {"headers": bearer("not.a.token")},
    ):
        response = anonymous_client.get(f"/api/management/feeds/get/{feed}", **kwargs)
        assert response.status_code == 401, kwargs
        assert error_code(response) == "UNAUTHORIZED"
    # A success resets the failure count of the "api" account for this client.
    assert client.get(f"/api/management/feeds/get/{feed}").status_code == 200


# --- users ---------------------------------------------------------------------------------------


def test_user_lifecycle_and_permissions(client, anonymous_client):
    view_only, writable = create_feed(client), create_feed(client)
    seed_image(client, f"{view_only}/app")
    user, password = create_user(client)

    listed = client.get("/api/users/list")
    assert listed.status_code == 200
    assert password not in listed.text
    assert "argon2" not in listed.text
    (entry,) = [u for u in listed.json() if u["name"] == user]
    assert entry["systemApis"] == []
    assert entry["permissions"] == {}

    # No permission yet: the password is right, the feed is not open to this user.
    denied = anonymous_client.get(f"/v2/{view_only}/app/tags/list", auth=(user, password))
    assert denied.status_code == 403
    assert error_code(denied) == "DENIED"

    grant(client, user, view_only, "view")
    grant(client, user, None, "add")
    (entry,) = [u for u in client.get("/api/users/list").json() if u["name"] == user]
    assert entry["permissions"] == {view_only: ["view"], "*": ["add"]}

    pulled = anonymous_client.get(f"/v2/{view_only}/app/tags/list", auth=(user, password))
    assert pulled.status_code == 200
    assert pulled.json()["tags"] == ["1.0.0"]
    with httpx.Client(base_url=client.base_url, auth=(user, password), timeout=60) as as_user:
        # "add" on every feed, but "view" only on one feed: a push needs pull as well (decided by
        # method, as distribution does), so only the feed it may view takes the push.
        image = make_image(1, seed=unique("user"))
        push_image(as_user, f"{view_only}/app", image, "2.0.0")
        assert as_user.get(f"/v2/{view_only}/app/manifests/2.0.0").content == image.manifest
        for refused in (
            as_user.post(f"/v2/{writable}/app/blobs/uploads/"),
            as_user.get(f"/v2/{writable}/app/manifests/2.0.0"),
        ):
            assert refused.status_code == 403
            assert error_code(refused) == "DENIED"
            assert "may not pull in feed" in refused.json()["errors"][0]["message"]
        deleted = as_user.delete(f"/v2/{view_only}/app/manifests/1.0.0")
        assert deleted.status_code == 403
        assert error_code(deleted) == "DENIED"
        via_api = as_user.get(f"/api/management/feeds/get/{view_only}")
        assert via_api.status_code == 200

    wrong = anonymous_client.get(f"/v2/{view_only}/app/tags/list", auth=(user, "not-" + password))
    assert wrong.status_code == 401
    assert error_code(wrong) == "UNAUTHORIZED"

    grant(client, user, view_only)  # an empty list revokes
    revoked = anonymous_client.get(f"/v2/{view_only}/app/tags/list", auth=(user, password))
    assert_error(revoked, 403, "DENIED")

    deleted_user = client.delete("/api/users/delete", params={"name": user})
    assert deleted_user.status_code == 200
    assert all(u["name"] != user for u in client.get("/api/users/list").json())
    gone = anonymous_client.get("/v2/", auth=(user, password))
    assert gone.status_code == 401
    missing = client.post("/api/users/delete", params={"name": user})
    assert missing.status_code == 404
    assert error_code(missing) == "NAME_UNKNOWN"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "api", "password": "long-enough"}, 400, "REQUEST_INVALID"),
        ({"name": "NotValid!", "password": "long-enough"}, 400, "REQUEST_INVALID"),
        ({"name": "shorty", "password": "short"}, 400, "REQUEST_INVALID"),
        (
            {"name": "apis", "password": "long-enough", "systemApis": ["root"]},
            400,
            "REQUEST_INVALID",
        ),
    ],
)
def test_invalid_users_are_refused(client, body, status, code):
    response = client.post("/api/users/create", json=body)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert body["password"] not in response.text


def test_duplicate_user_is_a_conflict(client):
    user, _ = create_user(client)
    again = client.post("/api/users/create", json={"name": user, "password": "another-one"})
    assert again.status_code == 409
    assert error_code(again) == "CONFLICT"


def test_user_with_feeds_system_api_creates_feeds(client, anonymous_client):
    user, password = create_user(client, system_apis=("feeds",))
    created = anonymous_client.post(
        "/api/management/feeds/create", json={"name": unique("feed")}, auth=(user, password)
    )
    assert created.status_code == 201, created.text
    keys = anonymous_client.get("/api/users/list", auth=(user, password))
    assert_error(keys, 403, "DENIED")


def test_personal_keys_act_as_their_user(client, anonymous_client):
    feed = create_feed(client)
    seed_image(client, f"{feed}/app")
    user, password = create_user(client)
    grant(client, user, feed, "view")
    other, _ = create_user(client)

    # A user makes personal keys for itself, and nothing else.
    own = anonymous_client.post(
        "/api/api-keys/create", json={"type": "personal", "user": user}, auth=(user, password)
    )
    assert own.status_code == 200, own.text
    key = own.text
    assert key.startswith("semreg_")
    for body in (
        {"type": "personal", "user": other},
        {"type": "feed", "feed": feed, "packagePermissions": ["view"]},
        {"type": "system", "systemApis": ["feeds"]},
    ):
        refused = anonymous_client.post("/api/api-keys/create", json=body, auth=(user, password))
        assert refused.status_code == 403, body
        assert error_code(refused) == "DENIED"
    mine = anonymous_client.get("/api/api-keys/list", auth=(user, password))
    assert mine.status_code == 200
    assert [(k["type"], k["user"]) for k in mine.json()] == [("personal", user)]
    assert key not in mine.text

    assert anonymous_client.get(f"/v2/{feed}/app/tags/list", auth=api(key)).status_code == 200
    with httpx.Client(base_url=client.base_url, auth=api(key), timeout=60) as as_key:
        image = make_image(1, seed=unique("personal"))
        blob = as_key.post(
            f"/v2/{feed}/app/blobs/uploads/",
            params={"digest": next(iter(image.blobs))},
            content=next(iter(image.blobs.values())),
        )
        assert_error(blob, 403, "DENIED")
        # The key follows its user's permissions as they change.
        grant(client, user, feed, "view", "add")
        push_image(as_key, f"{feed}/app", image, "1.1.0")

    # Deleting the user ends its personal keys.
    assert client.delete("/api/users/delete", params={"name": user}).status_code == 200
    assert_error(anonymous_client.get("/v2/", auth=api(key)), 401, "UNAUTHORIZED")


# --- what keys may do on /v2 ---------------------------------------------------------------------


def test_a_dev_key_can_do_nothing_on_prod(client, anonymous_client):
    dev, prod = create_feed(client), create_feed(client)
    digest = seed_image(client, f"{prod}/app")
    blob = next(iter(make_image(layers=1, seed="dev-prod").blobs.values()))
    key = feed_key(client, dev, "view", "add")
    with httpx.Client(base_url=client.base_url, auth=api(key), timeout=60) as as_dev:
        push_image(as_dev, f"{dev}/app", make_image(1, seed="dev-prod"), "1.0.0")
        assert as_dev.get(f"/v2/{dev}/app/manifests/1.0.0").status_code == 200

        attempts = {
            "GET manifest": as_dev.get(f"/v2/{prod}/app/manifests/1.0.0"),
            "HEAD manifest": as_dev.head(f"/v2/{prod}/app/manifests/{digest}"),
            "tags": as_dev.get(f"/v2/{prod}/app/tags/list"),
            "referrers": as_dev.get(f"/v2/{prod}/app/referrers/{digest}"),
            "upload": as_dev.post(f"/v2/{prod}/app/blobs/uploads/"),
            "monolithic upload": as_dev.post(
                f"/v2/{prod}/app/blobs/uploads/",
                params={"digest": "sha256:" + "0" * 64},
                content=blob,
            ),
            "PUT manifest": as_dev.put(
                f"/v2/{prod}/app/manifests/2.0.0",
                content=as_dev.get(f"/v2/{dev}/app/manifests/1.0.0").content,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            "DELETE manifest": as_dev.delete(f"/v2/{prod}/app/manifests/{digest}"),
        }
        for what, response in attempts.items():
            assert response.status_code == 403, (what, response.text)
            if what != "HEAD manifest":
                assert error_code(response) == "DENIED", what

        # Its token request for prod is granted nothing.
        token = token_for(
            as_dev,
            scope(f"{prod}/app", "pull,push,delete"),
            scope(f"{dev}/app", "*"),
            auth=api(key),
        )
        assert granted(token) == [
            {"type": "repository", "name": f"{prod}/app", "actions": []},
            {"type": "repository", "name": f"{dev}/app", "actions": ["pull", "push"]},
        ]
        catalog = as_dev.get("/v2/_catalog")
        assert catalog.status_code == 200
        assert f"{dev}/app" in catalog.json()["repositories"]
        assert f"{prod}/app" not in catalog.json()["repositories"]
    assert client.get(f"/v2/{prod}/app/manifests/{digest}").status_code == 200
    assert_error(client.get(f"/v2/{prod}/app/manifests/2.0.0"), 404, "MANIFEST_UNKNOWN")


def test_mount_from_an_unreadable_feed_starts_an_upload_instead(client, anonymous_client):
    dev, prod = create_feed(client), create_feed(client)
    image = make_image(layers=1, seed=unique("mount"))
    push_image(client, f"{prod}/app", image, "1.0.0")
    layer = next(d for d in image.blobs if d != image.digest)
    key = feed_key(client, dev, "view", "add")
    response = anonymous_client.post(
        f"/v2/{dev}/app/blobs/uploads/",
        params={"mount": layer, "from": f"{prod}/app"},
        auth=api(key),
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{dev}/app/blobs/uploads/")
    assert anonymous_client.head(f"/v2/{dev}/app/blobs/{layer}", auth=api(key)).status_code == 404


def test_pull_only_key_cannot_push_or_delete(client, anonymous_client, feed):
    image = make_image(layers=1, seed=unique("pull-only"))
    digest = push_image(client, f"{feed}/app", image, "1.0.0")
    layer = next(iter(image.blobs))
    key = feed_key(client, feed, "view")
    with httpx.Client(base_url=client.base_url, auth=api(key), timeout=60) as reader:
        pulled = reader.get(f"/v2/{feed}/app/manifests/1.0.0")
        assert pulled.status_code == 200
        assert pulled.content == image.manifest
        assert reader.get(f"/v2/{feed}/app/blobs/{layer}").content == image.blobs[layer]

        for response in (
            reader.post(f"/v2/{feed}/app/blobs/uploads/"),
            reader.put(
                f"/v2/{feed}/app/manifests/1.0.1",
                content=image.manifest,
                headers={"Content-Type": image.media_type},
            ),
            reader.delete(f"/v2/{feed}/app/manifests/{digest}"),
            reader.delete(f"/v2/{feed}/app/manifests/1.0.0"),
            reader.delete(f"/v2/{feed}/app/blobs/{layer}"),
        ):
            assert response.status_code == 403, response.request.url
            assert error_code(response) == "DENIED"
    assert client.get(f"/v2/{feed}/app/manifests/1.0.0").status_code == 200
    assert_error(client.get(f"/v2/{feed}/app/manifests/1.0.1"), 404, "MANIFEST_UNKNOWN")


def test_only_a_key_with_delete_deletes_manifests(client, anonymous_client, feed):
    digest = seed_image(client, f"{feed}/app")
    writer = feed_key(client, feed, "view", "add", "promote")
    refused = anonymous_client.delete(f"/v2/{feed}/app/manifests/{digest}", auth=api(writer))
    assert refused.status_code == 403
    assert error_code(refused) == "DENIED"
    assert client.get(f"/v2/{feed}/app/manifests/{digest}").status_code == 200

    deleter = feed_key(client, feed, "view", "delete")
    deleted = anonymous_client.delete(f"/v2/{feed}/app/manifests/{digest}", auth=api(deleter))
    assert deleted.status_code == 202, deleted.text
    assert_error(client.get(f"/v2/{feed}/app/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_revoked_key_stops_working_at_once(client, anonymous_client, feed):
    seed_image(client, f"{feed}/app")
    name = unique("revoked")
    key = create_key(
        client, type="feed", feed=feed, packagePermissions=["view", "add"], displayName=name
    )
    token = token_for(anonymous_client, scope(f"{feed}/app", "pull"), auth=api(key))
    assert anonymous_client.get(f"/v2/{feed}/app/tags/list", auth=api(key)).status_code == 200

    key_id = listed_key(client, name)["id"]
    assert client.delete("/api/api-keys/delete", params={"id": key_id}).status_code == 200

    for response in (
        anonymous_client.get(f"/v2/{feed}/app/tags/list", auth=api(key)),
        request_token(anonymous_client, scope(f"{feed}/app", "pull"), auth=api(key)),
        anonymous_client.get(f"/api/management/feeds/get/{feed}", headers={"X-ApiKey": key}),
        anonymous_client.get(f"/api/management/feeds/get/{feed}", headers=bearer(token)),
    ):
        assert response.status_code == 401, response.request.url
        assert error_code(response) == "UNAUTHORIZED"

    # Strict mode too: the token's key is looked up on use (cached for a few seconds at most;
    # this token was never used before the revocation, so nothing is cached).
    refused = anonymous_client.get(f"/v2/{feed}/app/tags/list", headers=bearer(token))
    assert refused.status_code == 401, refused.text
    assert error_code(refused) == "UNAUTHORIZED"
    assert "no longer exists" in refused.json()["errors"][0]["message"]


# --- a server with strict sign-in settings -------------------------------------------------------


@pytest.fixture(scope="module")
def locked(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    """Three failures lock an account, passwords are off on /api, everything is logged."""
    server = ServerProcess(
        tmp_path_factory.mktemp("locked"),
        database_factory(),
        SEMREG_AUTH__FAILURE_LIMIT="3",
        SEMREG_AUTH__API_BASIC_PASSWORDS="false",
        SEMREG_LOG__LEVEL="DEBUG",
        SEMREG_LOG__ACCESS_LOG="true",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def locked_admin(locked: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=locked.url, auth=locked.auth, timeout=60) as c:
        yield c


def test_failed_sign_ins_lock_the_account_for_that_client(locked, locked_admin):
    user, password = create_user(locked_admin)
    other, other_password = create_user(locked_admin)
    with httpx.Client(base_url=locked.url, timeout=60) as http:
        for attempt in range(3):
            started = time.monotonic()
            failed = request_token(http, auth=(user, f"wrong-{attempt}"))
            assert time.monotonic() - started >= 0.25  # each failure is slowed down
            assert failed.status_code == 401
            assert error_code(failed) == "UNAUTHORIZED"

        # The right password no longer helps, on the token endpoint or on /v2 directly.
        for response in (
            request_token(http, auth=(user, password)),
            http.get("/v2/", auth=(user, password)),
        ):
            assert response.status_code == 429, response.text
            assert error_code(response) == "TOOMANYREQUESTS"
            assert response.headers["Retry-After"] == "300"

        # Other accounts are not affected.
        assert request_token(http, auth=(other, other_password)).status_code == 200
        assert http.get("/v2/", auth=locked.auth).status_code == 200


def test_a_successful_sign_in_resets_the_failure_count(locked, locked_admin):
    user, password = create_user(locked_admin)
    with httpx.Client(base_url=locked.url, timeout=60) as http:
        # Four failures in all, more than the limit of three, but never three in a row.
        for _ in range(2):
            for wrong in ("wrong-1", "wrong-2"):
                assert_error(http.get("/v2/", auth=(user, wrong)), 401, "UNAUTHORIZED")
            assert http.get("/v2/", auth=(user, password)).status_code == 200


def test_passwords_switched_off_on_api_only(locked, locked_admin):
    feed = create_feed(locked_admin)
    user, password = create_user(locked_admin)
    grant(locked_admin, user, feed, "view")
    with httpx.Client(base_url=locked.url, timeout=60) as http:
        refused = http.get(f"/api/management/feeds/get/{feed}", auth=(user, password))
        assert refused.status_code == 401
        assert error_code(refused) == "UNAUTHORIZED"
        assert "switched off" in refused.json()["errors"][0]["message"]

        # Keys still work on /api; passwords still work on /v2 and the token endpoint.
        key = feed_key(locked_admin, feed, "view")
        assert http.get(f"/api/management/feeds/get/{feed}", auth=api(key)).status_code == 200
        assert_error(
            http.get(f"/v2/{feed}/app/tags/list", auth=(user, password)), 404, "NAME_UNKNOWN"
        )
        token = token_for(http, scope(f"{feed}/app", "pull"), auth=(user, password))
        assert (
            http.get(f"/api/management/feeds/get/{feed}", headers=bearer(token)).status_code == 200
        )


def test_keys_and_passwords_never_reach_logs_or_other_answers(locked, locked_admin):
    feed = create_feed(locked_admin)
    seed_image(locked_admin, f"{feed}/app")
    user, password = create_user(locked_admin)
    grant(locked_admin, user, feed, "view", "add")
    keys = [
        feed_key(locked_admin, feed, "view", "add"),
        create_key(locked_admin, type="system", systemApis=["feeds"]),
        create_key(locked_admin, type="personal", user=user),
    ]
    wrong_password = f"wrong-{unique('pw')}"
    wrong_key = keys[0][:20] + "A" * (len(keys[0]) - 20)
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=locked.url, timeout=60) as http:
        for key in keys:
            answers += [
                http.get("/v2/", auth=api(key)),
                request_token(http, scope(f"{feed}/app", "pull,push"), auth=api(key)),
                http.get(f"/v2/{feed}/app/tags/list", auth=api(key)),
                http.get(f"/api/management/feeds/get/{feed}", headers={"X-ApiKey": key}),
                http.get(f"/api/management/feeds/get/{feed}", params={"key": key}),
                http.get(f"/api/management/feeds/get/{feed}", headers=bearer(key)),
                http.get("/api/api-keys/list", auth=api(key)),
            ]
        token = answers[1].json()["token"]
        answers += [
            request_token(http, scope(f"{feed}/app", "pull"), auth=(user, password)),
            http.get(f"/v2/{feed}/app/manifests/1.0.0", auth=(user, password)),
            http.get(f"/v2/{feed}/app/manifests/1.0.0", headers=bearer(token)),
            http.get(f"/api/management/feeds/get/{feed}", auth=(user, password)),
            http.get("/v2/", auth=(user, wrong_password)),
            request_token(http, auth=(user, wrong_password)),
            http.get("/v2/", auth=api(wrong_key)),
            http.get(f"/api/management/feeds/get/{feed}", params={"key": wrong_key}),
            locked_admin.get("/api/api-keys/list"),
            locked_admin.get("/api/users/list"),
            locked_admin.get("/api/management/feeds/list"),
        ]
    assert all(a.status_code < 500 for a in answers)
    assert [a.status_code for a in answers[-11:]] == [200, 200, 200, 401] + [401] * 4 + [200] * 3

    secrets = [*keys, locked.admin_key, password, wrong_password, wrong_key]
    for answer in answers:
        for secret in secrets:
            assert secret not in answer.text, answer.request.url
            assert all(secret not in value for value in answer.headers.values())

    log = locked.log()
    # The log is detailed enough that a leak would show: every request is in it.
    assert '"path": "/api/api-keys/create"' in log
    assert '"path": "/v2/_auth"' in log
    assert '"status": 401' in log
    for secret in secrets:
        assert secret not in log
    # Keys and passwords are stored hashed (SQLite keeps its database in the data folder).
    for path in locked.data_dir.glob("semreg.db*"):
        stored = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in stored, path
