"""A token belongs to one key or user, for as long as that principal exists and holds the right.

Tokens carry the principal's id *and* its nonce (random, set at creation); ids are never reused
(SQLite ``AUTOINCREMENT``); and a token's principal is looked up on use, cached for at most
``auth.principal_cache_seconds``. So a token of a deleted, revoked or re-created principal is
refused on /api and /v2, and a withdrawn permission ends its tokens within that time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.auth_helpers import (
    bearer,
    create_feed,
    create_key,
    grant,
    listed_key,
    scope,
    seed_image,
    token_for,
)
from tests.conftest import unique
from tests.registry_client import error_code
from tests.server import ServerProcess


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert error_code(response) == "UNAUTHORIZED"


def test_a_deleted_keys_token_never_becomes_the_next_keys_token(client, anonymous_client):
    feed = create_feed(client)
    seed_image(client, f"{feed}/app")
    name = unique("doomed")
    doomed = create_key(
        client, type="feed", feed=feed, packagePermissions=["view"], displayName=name
    )
    token = token_for(anonymous_client, scope(f"{feed}/app", "pull"), auth=("api", doomed))
    doomed_id = listed_key(client, name)["id"]
    assert client.delete("/api/api-keys/delete", params={"id": doomed_id}).status_code == 200

    # The newest key (the one SQLite would have given the deleted key's id) has full control.
    heir = unique("heir")
    create_key(client, type="system", systemApis=["full-control"], displayName=heir)
    assert listed_key(client, heir)["id"] != doomed_id

    assert_refused(anonymous_client.get("/api/api-keys/list", headers=bearer(token)))
    assert_refused(anonymous_client.get("/api/users/list", headers=bearer(token)))
    assert_refused(anonymous_client.get(f"/v2/{feed}/app/tags/list", headers=bearer(token)))


def test_a_recreated_user_does_not_inherit_the_old_users_tokens(client, anonymous_client):
    feed = create_feed(client)
    seed_image(client, f"{feed}/app")
    name, password = unique("user"), f"pw-{unique('secret')}"
    body = {"name": name, "password": password, "systemApis": []}
    assert client.post("/api/users/create", json=body).status_code == 201
    grant(client, name, feed, "view")
    token = token_for(anonymous_client, scope(f"{feed}/app", "pull"), auth=(name, password))
    assert (
        anonymous_client.get(f"/v2/{feed}/app/tags/list", headers=bearer(token)).status_code == 200
    )

    assert client.delete("/api/users/delete", params={"name": name}).status_code == 200
    again = {"name": name, "password": password, "systemApis": ["full-control"]}
    assert client.post("/api/users/create", json=again).status_code == 201

    # Never the new user's rights; and once the old user's cached lookup (5 s by default)
    # expires, nothing at all.
    assert anonymous_client.get("/api/users/list", headers=bearer(token)).status_code != 200
    deadline = time.monotonic() + 5 + 3
    while (
        listed := anonymous_client.get("/api/users/list", headers=bearer(token))
    ).status_code != 401:
        assert listed.status_code == 403, listed.text
        assert error_code(listed) == "DENIED"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert_refused(listed)
    assert_refused(anonymous_client.get(f"/v2/{feed}/app/tags/list", headers=bearer(token)))
    # The new user's own token works.
    fresh = token_for(anonymous_client, scope(f"{feed}/app", "pull"), auth=(name, password))
    assert (
        anonymous_client.get(f"/v2/{feed}/app/tags/list", headers=bearer(fresh)).status_code == 200
    )


# --- how fast a revocation arrives --------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("quick-revocation"),
        database_factory(),
        SEMREG_AUTH__PRINCIPAL_CACHE_SECONDS="1",
    ).start()
    yield server
    server.stop()


def seconds_until_refused(http: httpx.Client, path: str, token: str) -> float:
    started = time.monotonic()
    while True:
        response = http.get(path, headers=bearer(token))
        if response.status_code != 200:
            assert response.status_code in (401, 403), response.text
            return time.monotonic() - started
        assert time.monotonic() - started < 10, "the token kept working"
        time.sleep(0.05)


def test_a_revoked_keys_tokens_end_within_the_principal_cache_time(quick):
    with httpx.Client(base_url=quick.url, auth=quick.auth, timeout=60) as admin:
        feed = create_feed(admin)
        seed_image(admin, f"{feed}/app")
        name = unique("revoked")
        key = create_key(
            admin, type="feed", feed=feed, packagePermissions=["view"], displayName=name
        )
        with httpx.Client(base_url=quick.url, timeout=60) as http:
            token = token_for(http, scope(f"{feed}/app", "pull"), auth=("api", key))
            path = f"/v2/{feed}/app/tags/list"
            assert http.get(path, headers=bearer(token)).status_code == 200  # now cached
            key_id = listed_key(admin, name)["id"]
            assert admin.delete("/api/api-keys/delete", params={"id": key_id}).status_code == 200
            assert seconds_until_refused(http, path, token) < 1 + 1.5


def test_a_withdrawn_permission_ends_strict_tokens(quick):
    with httpx.Client(base_url=quick.url, auth=quick.auth, timeout=60) as admin:
        feed = create_feed(admin)
        seed_image(admin, f"{feed}/app")
        name, password = unique("user"), f"pw-{unique('secret')}"
        body = {"name": name, "password": password, "systemApis": []}
        assert admin.post("/api/users/create", json=body).status_code == 201
        grant(admin, name, feed, "view")
        with httpx.Client(base_url=quick.url, timeout=60) as http:
            token = token_for(http, scope(f"{feed}/app", "pull"), auth=(name, password))
            path = f"/v2/{feed}/app/tags/list"
            assert http.get(path, headers=bearer(token)).status_code == 200
            grant(admin, name, feed)  # no permissions left on the feed
            assert seconds_until_refused(http, path, token) < 1 + 1.5
            refused = http.get(path, headers=bearer(token))
            assert refused.status_code == 403
            assert error_code(refused) == "DENIED"
            assert "no longer" in refused.json()["errors"][0]["message"]


def test_a_feed_keys_token_ends_with_its_key_on_every_replica(quick, tmp_path):
    # A second process on the same database and data folder: it learns of the revocation on
    # its own, within the cache time, with nothing sent between the processes.
    second = ServerProcess(
        quick.data_dir,
        quick.database_url,
        admin_key=quick.admin_key,
        SEMREG_AUTH__PRINCIPAL_CACHE_SECONDS="1",
    )
    second.log_path = tmp_path / "second.log"
    second.start()
    try:
        with httpx.Client(base_url=quick.url, auth=quick.auth, timeout=60) as admin:
            feed = create_feed(admin)
            seed_image(admin, f"{feed}/app")
            name = unique("replica")
            key = create_key(
                admin, type="feed", feed=feed, packagePermissions=["view"], displayName=name
            )
            with httpx.Client(base_url=second.url, timeout=60) as http:
                # Tokens are issued for the service (host:port) asked for: one per replica.
                token = token_for(http, scope(f"{feed}/app", "pull"), auth=("api", key))
                path = f"/v2/{feed}/app/tags/list"
                assert http.get(path, headers=bearer(token)).status_code == 200
                key_id = listed_key(admin, name)["id"]
                assert (
                    admin.delete("/api/api-keys/delete", params={"id": key_id}).status_code == 200
                )
                assert seconds_until_refused(http, path, token) < 1 + 1.5
    finally:
        second.stop()
