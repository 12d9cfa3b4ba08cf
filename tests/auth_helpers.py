"""Helpers shared by the authentication tests: feeds, keys, users, tokens and forgeries."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt

from tests.conftest import unique
from tests.factories import make_image
from tests.registry_client import push_image


def create_feed(admin: httpx.Client, *, anonymous_view: bool = False) -> str:
    name = unique("feed")
    response = admin.post(
        "/api/management/feeds/create",
        json={"name": name, "feedType": "docker", "anonymousView": anonymous_view},
    )
    assert response.status_code == 201, response.text
    assert response.json()["anonymousView"] is anonymous_view
    return name


def create_key(admin: httpx.Client, **spec: object) -> str:
    """POST /api/api-keys/create; the answer is the key text, shown this once."""
    spec.setdefault("displayName", unique("key"))
    response = admin.post("/api/api-keys/create", json=spec)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith("semreg_")
    return response.text


def feed_key(admin: httpx.Client, feed: str, *permissions: str) -> str:
    return create_key(admin, type="feed", feed=feed, packagePermissions=list(permissions))


def listed_key(admin: httpx.Client, display_name: str) -> dict[str, object]:
    response = admin.get("/api/api-keys/list")
    assert response.status_code == 200, response.text
    (found,) = [k for k in response.json() if k["displayName"] == display_name]
    return dict(found)


def create_user(
    admin: httpx.Client, system_apis: tuple[str, ...] = (), password: str | None = None
) -> tuple[str, str]:
    name = unique("user")
    password = password or f"pw-{unique('secret')}"
    response = admin.post(
        "/api/users/create",
        json={"name": name, "password": password, "systemApis": list(system_apis)},
    )
    assert response.status_code == 201, response.text
    return name, password


def grant(admin: httpx.Client, user: str, feed: str | None, *permissions: str) -> None:
    response = admin.post(
        "/api/users/permissions",
        json={"user": user, "feed": feed, "permissions": list(permissions)},
    )
    assert response.status_code == 200, response.text


def scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def request_token(
    http: httpx.Client,
    *scopes: str,
    auth: tuple[str, str] | None = None,
    service: str | None = None,
) -> httpx.Response:
    """GET /v2/_auth with the server's own service name unless told otherwise."""
    params: list[tuple[str, str]] = [("service", service or http.base_url.netloc.decode())]
    params += [("scope", s) for s in scopes]
    if auth is None:
        with httpx.Client(base_url=http.base_url, timeout=60) as anonymous:
            return anonymous.get("/v2/_auth", params=params)
    return http.get("/v2/_auth", params=params, auth=auth)


def token_for(http: httpx.Client, *scopes: str, auth: tuple[str, str] | None = None) -> str:
    response = request_token(http, *scopes, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def claims(token: str) -> dict[str, object]:
    """The payload of a token, unverified (the tests only read what the server granted)."""
    payload: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return payload


def granted(token: str) -> list[dict[str, object]]:
    access = claims(token)["access"]
    assert isinstance(access, list)
    return access


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api(key: str) -> tuple[str, str]:
    """HTTP Basic credentials of an API key."""
    return ("api", key)


def seed_image(admin: httpx.Client, repository: str, tag: str = "1.0.0", **kwargs: object) -> str:
    """Push a small image with the administrator key; return its digest."""
    image = make_image(layers=1, seed=unique("seed"), **kwargs)
    return push_image(admin, repository, image, tag)


def admin_principal_claim(registry) -> object:
    """The ``pri`` claim of a token the server issues to its full-control key."""
    with httpx.Client(base_url=registry.url, timeout=60) as http:
        return claims(token_for(http, auth=registry.auth))["pri"]


def signing_key(registry) -> bytes:
    return (registry.data_dir / "token-signing.key").read_bytes().strip()


def forge(
    registry,
    access: list[dict[str, object]],
    *,
    secret: bytes | None = None,
    algorithm: str = "HS256",
    **changes: object,
) -> str:
    """A token as the server would issue it to its administrator, with ``changes`` (None
    removes a claim). The principal claim is a real one: the server checks it on every use."""
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": "semreg",
        "sub": "forger",
        "aud": registry.host,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "access": access,
        "pri": admin_principal_claim(registry),
    }
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    key = None if algorithm == "none" else (secret or signing_key(registry))
    return jwt.encode(payload, key, algorithm=algorithm)
