"""The Docker token flow: /v2/_auth, challenges, scopes on /v2, anonymous pulls, and forged tokens.

Tokens are read without verification to check what was granted; forged tokens are signed with the
server's own key from its data folder, so each refusal is down to the one thing that is wrong.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from tests.auth_helpers import (
    api,
    bearer,
    claims,
    create_feed,
    feed_key,
    forge,
    granted,
    request_token,
    scope,
    seed_image,
    token_for,
)
from tests.factories import make_image
from tests.registry_client import assert_error, error_code, push_image


def challenge(response: httpx.Response) -> tuple[str, dict[str, str]]:
    scheme, _, rest = response.headers["WWW-Authenticate"].partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def expected_challenge(registry, scope_text: str | None = None, error: str | None = None) -> str:
    value = f'Bearer realm="{registry.url}/v2/_auth",service="{registry.host}"'
    if scope_text is not None:
        value += f',scope="{scope_text}"'
    if error is not None:
        value += f',error="{error}"'
    return value


# --- the token endpoint --------------------------------------------------------------------------


def test_token_answer_follows_the_docker_token_specification(registry, client, feed):
    key = feed_key(client, feed, "view", "add")
    before = datetime.now(UTC).replace(microsecond=0)
    response = request_token(client, scope(f"{feed}/app", "pull,push,delete"), auth=api(key))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert before.timestamp() - 1 <= issued.timestamp() <= time.time() + 1

    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    payload = claims(body["token"])
    assert payload["iss"] == "semreg"
    assert payload["aud"] == registry.host
    assert payload["iat"] == int(issued.timestamp())
    assert payload["exp"] == payload["iat"] + 300
    assert payload["access"] == [
        {"type": "repository", "name": f"{feed}/app", "actions": ["pull", "push"]}
    ]


def test_the_grant_is_the_intersection_of_several_scopes(client, anonymous_client, feed):
    other = create_feed(client)
    key = feed_key(client, feed, "view", "delete")
    response = anonymous_client.get(
        "/v2/_auth",
        params=[
            ("service", client.base_url.netloc.decode()),
            ("account", "someone"),
            ("scope", scope(f"{feed}/app", "push,pull")),
            ("scope", f"{scope(f'{feed}/team/web', '*')} {scope(f'{other}/app', 'pull')}"),
            ("scope", "registry:catalog:*"),
            ("scope", "plugin:whatever:pull"),
        ],
        auth=api(key),
    )
    assert response.status_code == 200, response.text
    assert granted(response.json()["token"]) == [
        {"type": "repository", "name": f"{feed}/app", "actions": ["pull"]},
        {"type": "repository", "name": f"{feed}/team/web", "actions": ["pull", "delete"]},
        {"type": "repository", "name": f"{other}/app", "actions": []},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
        {"type": "plugin", "name": "whatever", "actions": []},
    ]


def test_token_without_scope_and_without_service(registry, client):
    response = client.get("/v2/_auth")
    assert response.status_code == 200, response.text
    payload = claims(response.json()["token"])
    assert payload["aud"] == registry.host
    assert payload["access"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"service": "registry.example.com"},
        {"service": "127.0.0.1:1"},
        {"scope": "repository:feed/app"},
        {"scope": "repository:Feed/App:pull"},
        {"scope": "nonsense"},
    ],
)
def test_bad_token_requests_are_refused(client, params):
    response = client.get("/v2/_auth", params=params)
    assert response.status_code == 400, response.text
    assert error_code(response) == "REQUEST_INVALID"
    assert "token" not in response.json()


def test_wrong_credentials_get_no_token(client, anonymous_client, feed):
    for credentials in (api("semreg_" + "n" * 43), ("nobody-at-all", "some-password")):
        response = request_token(anonymous_client, scope(f"{feed}/app", "pull"), auth=credentials)
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHORIZED"
        assert "token" not in response.json()
    assert client.get("/v2/").status_code == 200  # resets the "api" failure count


# --- challenges ----------------------------------------------------------------------------------


def test_requests_without_credentials_are_challenged(registry, anonymous_client, feed):
    digest = "sha256:" + "a" * 64
    name = f"{feed}/team/app"
    cases = [
        ("GET", f"/v2/{name}/manifests/1.0.0", "pull"),
        ("HEAD", f"/v2/{name}/manifests/1.0.0", "pull"),
        ("GET", f"/v2/{name}/blobs/{digest}", "pull"),
        ("GET", f"/v2/{name}/tags/list", "pull"),
        ("GET", f"/v2/{name}/referrers/{digest}", "pull"),
        ("POST", f"/v2/{name}/blobs/uploads/", "pull,push"),
        ("PUT", f"/v2/{name}/manifests/1.0.0", "pull,push"),
        ("PATCH", f"/v2/{name}/blobs/uploads/{uuid.uuid4()}", "pull,push"),
        # By method, as distribution decides: an upload's status is a read, its cancel a delete.
        ("GET", f"/v2/{name}/blobs/uploads/{uuid.uuid4()}", "pull"),
        ("PUT", f"/v2/{name}/blobs/uploads/{uuid.uuid4()}", "pull,push"),
        ("DELETE", f"/v2/{name}/blobs/uploads/{uuid.uuid4()}", "delete"),
        ("DELETE", f"/v2/{name}/manifests/{digest}", "delete"),
        ("DELETE", f"/v2/{name}/blobs/{digest}", "delete"),
    ]
    for method, path, actions in cases:
        response = anonymous_client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == expected_challenge(
            registry, scope(name, actions)
        ), (method, path)
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        if method != "HEAD":
            assert error_code(response) == "UNAUTHORIZED"

    for path in ("/v2/", "/v2", "/v2/_catalog"):
        response = anonymous_client.get(path)
        assert response.status_code == 401, path
        assert error_code(response) == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == expected_challenge(registry), path


def test_invalid_credentials_are_challenged_with_the_scope(registry, client, anonymous_client):
    # "/v2 requests without valid credentials get 401 with ... scope=": a client holding an
    # expired token must learn which scope to ask for again.
    feed = create_feed(client)
    name = f"{feed}/app"
    expired = forge(registry, [], iat=int(time.time()) - 600, exp=int(time.time()) - 300)
    for kwargs in ({"headers": bearer(expired)}, {"auth": api("semreg_" + "w" * 43)}):
        response = anonymous_client.get(f"/v2/{name}/manifests/1.0.0", **kwargs)
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHORIZED"
        scheme, params = challenge(response)
        assert scheme == "Bearer"
        assert params["realm"] == f"{registry.url}/v2/_auth"
        assert params["service"] == registry.host
        assert params.get("scope") == scope(name, "pull"), response.headers["WWW-Authenticate"]
    assert client.get("/v2/").status_code == 200


def test_docker_login_flow(registry, client, anonymous_client, feed):
    key = feed_key(client, feed, "view")
    first = anonymous_client.get("/v2/")
    assert_error(first, 401, "UNAUTHORIZED")
    scheme, params = challenge(first)
    assert scheme == "Bearer"
    assert "scope" not in params

    token_response = anonymous_client.get(
        params["realm"], params={"service": params["service"]}, auth=api(key)
    )
    assert token_response.status_code == 200, token_response.text
    token = token_response.json()["token"]
    assert claims(token)["access"] == []

    signed_in = anonymous_client.get("/v2/", headers=bearer(token))
    assert signed_in.status_code == 200
    assert signed_in.json() == {}
    assert signed_in.headers["Docker-Distribution-API-Version"] == "registry/2.0"

    # Basic credentials sent straight to /v2 work as well.
    assert anonymous_client.get("/v2/", auth=api(key)).status_code == 200


def test_insufficient_scope_is_denied_with_a_challenge(registry, client, anonymous_client, feed):
    name = f"{feed}/app"
    digest = seed_image(client, name)
    key = feed_key(client, feed, "view", "add", "delete")
    pull = token_for(anonymous_client, scope(name, "pull"), auth=api(key))
    image = make_image(1, seed="insufficient")
    with httpx.Client(base_url=registry.url, headers=bearer(pull), timeout=60) as puller:
        assert puller.get(f"/v2/{name}/manifests/1.0.0").status_code == 200
        for method, path, actions in (
            ("POST", f"/v2/{name}/blobs/uploads/", "pull,push"),
            ("PUT", f"/v2/{name}/manifests/2.0.0", "pull,push"),
            ("DELETE", f"/v2/{name}/manifests/{digest}", "delete"),
        ):
            response = puller.request(
                method, path, content=image.manifest, headers={"Content-Type": image.media_type}
            )
            assert response.status_code == 403, (method, response.text)
            assert error_code(response) == "DENIED"
            assert response.headers["WWW-Authenticate"] == expected_challenge(
                registry, scope(name, actions), "insufficient_scope"
            )

    # The token the challenge asks for does the job.
    push = token_for(anonymous_client, scope(name, "pull,push"), auth=api(key))
    with httpx.Client(base_url=registry.url, headers=bearer(push), timeout=60) as pusher:
        push_image(pusher, name, image, "2.0.0")
        assert pusher.get(f"/v2/{name}/manifests/2.0.0").content == image.manifest
        refused = pusher.delete(f"/v2/{name}/manifests/{digest}")
        assert_error(refused, 403, "DENIED")
    delete = token_for(anonymous_client, scope(name, "delete"), auth=api(key))
    deleted = anonymous_client.delete(f"/v2/{name}/manifests/{digest}", headers=bearer(delete))
    assert deleted.status_code == 202, deleted.text


def test_a_token_opens_only_its_repositories(registry, client, anonymous_client):
    dev, prod = create_feed(client), create_feed(client)
    for name in (f"{dev}/app", f"{dev}/other", f"{dev}/app/sub", f"{prod}/app"):
        seed_image(client, name)
    # An administrator's token is still limited to what it asked for.
    token = token_for(client, scope(f"{dev}/app", "pull,push"), auth=registry.auth)
    assert granted(token) == [
        {"type": "repository", "name": f"{dev}/app", "actions": ["pull", "push"]}
    ]
    assert (
        anonymous_client.get(f"/v2/{dev}/app/tags/list", headers=bearer(token)).status_code == 200
    )
    for name in (f"{dev}/other", f"{dev}/app/sub", f"{prod}/app"):
        for method, path in (
            ("GET", f"/v2/{name}/manifests/1.0.0"),
            ("GET", f"/v2/{name}/tags/list"),
            ("POST", f"/v2/{name}/blobs/uploads/"),
        ):
            response = anonymous_client.request(method, path, headers=bearer(token))
            assert response.status_code == 403, (method, path)
            assert error_code(response) == "DENIED"
            assert challenge(response)[1]["error"] == "insufficient_scope"


# --- anonymous access ----------------------------------------------------------------------------


def test_anonymous_pull_only_where_the_feed_allows_it(registry, client, anonymous_client):
    public = create_feed(client, anonymous_view=True)
    private = create_feed(client)
    image = make_image(1, seed="anonymous")
    for feed in (public, private):
        push_image(client, f"{feed}/app", image, "1.0.0")
    layer = next(iter(image.blobs))

    # No credentials at all.
    for path in (
        f"/v2/{public}/app/manifests/1.0.0",
        f"/v2/{public}/app/blobs/{layer}",
        f"/v2/{public}/app/tags/list",
    ):
        assert anonymous_client.get(path).status_code == 200, path
    assert anonymous_client.get(f"/v2/{public}/app/manifests/1.0.0").content == image.manifest
    private_pull = anonymous_client.get(f"/v2/{private}/app/manifests/1.0.0")
    assert_error(private_pull, 401, "UNAUTHORIZED")
    assert private_pull.headers["WWW-Authenticate"] == expected_challenge(
        registry, scope(f"{private}/app", "pull")
    )

    # Anonymous tokens: pull on the public feed, nothing else.
    token = token_for(
        anonymous_client,
        scope(f"{public}/app", "pull,push,delete"),
        scope(f"{private}/app", "pull"),
    )
    assert granted(token) == [
        {"type": "repository", "name": f"{public}/app", "actions": ["pull"]},
        {"type": "repository", "name": f"{private}/app", "actions": []},
    ]
    assert claims(token)["sub"] == "anonymous"
    with httpx.Client(base_url=registry.url, headers=bearer(token), timeout=60) as anonymous:
        assert anonymous.get(f"/v2/{public}/app/manifests/1.0.0").content == image.manifest
        assert anonymous.get(f"/v2/{public}/app/blobs/{layer}").content == image.blobs[layer]
        for response in (
            anonymous.get(f"/v2/{private}/app/manifests/1.0.0"),
            anonymous.post(f"/v2/{public}/app/blobs/uploads/"),
            anonymous.delete(f"/v2/{public}/app/manifests/{image.digest}"),
        ):
            assert response.status_code == 403, response.request.url
            assert error_code(response) == "DENIED"

    # Pushing and deleting anonymously are refused even on the public feed.
    for response in (
        anonymous_client.post(f"/v2/{public}/app/blobs/uploads/"),
        anonymous_client.put(
            f"/v2/{public}/app/manifests/2.0.0",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        ),
        anonymous_client.delete(f"/v2/{public}/app/manifests/{image.digest}"),
    ):
        assert response.status_code == 401, response.request.url
        assert error_code(response) == "UNAUTHORIZED"
    assert_error(client.get(f"/v2/{public}/app/manifests/2.0.0"), 404, "MANIFEST_UNKNOWN")

    # Any signed-in caller may pull from the public feed too, even a key for another feed.
    key = feed_key(client, private, "view")
    assert anonymous_client.get(f"/v2/{public}/app/tags/list", auth=api(key)).status_code == 200


# --- forged and tampered tokens ------------------------------------------------------------------


FORGERIES = {
    "signed with another key": ({"secret": secrets.token_hex(32).encode()}, "bad signature"),
    "expired": ({"iat": -600, "nbf": -600, "exp": -60}, "expired"),
    "for another service": ({"aud": "registry.example.com"}, "issued for another service"),
    "alg none": ({"algorithm": "none"}, "algorithm not allowed"),
    "HS512": ({"algorithm": "HS512"}, "algorithm not allowed"),
    "without expiry": ({"exp": None}, "malformed"),
    "from another issuer": ({"iss": "someone-else"}, "malformed"),
    "not yet valid": ({"nbf": 600}, "malformed"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_tokens_are_refused(registry, client, anonymous_client, feed, case):
    name = f"{feed}/app"
    seed_image(client, name)
    access = [{"type": "repository", "name": name, "actions": ["pull", "push"]}]
    # The same forgery without the defect is accepted: the refusal is down to the defect.
    genuine = forge(registry, access)
    assert anonymous_client.get(f"/v2/{name}/tags/list", headers=bearer(genuine)).status_code == 200

    changes, reason = FORGERIES[case]
    now = int(time.time())
    changes = {
        k: now + v if k in ("iat", "nbf", "exp") and isinstance(v, int) else v
        for k, v in changes.items()
    }
    token = forge(registry, access, **changes)
    for path in (f"/v2/{name}/tags/list", f"/api/management/feeds/get/{feed}"):
        response = anonymous_client.get(path, headers=bearer(token))
        assert response.status_code == 401, (path, response.text)
        assert error_code(response) == "UNAUTHORIZED"
        assert response.json()["errors"][0]["message"] == f"invalid token: {reason}"


def test_tampered_token_is_refused(registry, client, anonymous_client, feed):
    name = f"{feed}/app"
    seed_image(client, name)
    key = feed_key(client, feed, "view")
    token = token_for(anonymous_client, scope(name, "pull"), auth=api(key))
    header, payload, signature = token.split(".")
    widened = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    widened["access"] = [{"type": "repository", "name": name, "actions": ["pull", "push"]}]
    widened["exp"] += 3600
    edited = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    tampered = f"{header}.{edited}.{signature}"

    assert anonymous_client.get(f"/v2/{name}/tags/list", headers=bearer(token)).status_code == 200
    for method, path in (("GET", f"/v2/{name}/tags/list"), ("POST", f"/v2/{name}/blobs/uploads/")):
        response = anonymous_client.request(method, path, headers=bearer(tampered))
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHORIZED"
        assert response.json()["errors"][0]["message"] == "invalid token: bad signature"
