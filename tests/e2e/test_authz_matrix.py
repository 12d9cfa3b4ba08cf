"""Every /api and /v2 endpoint against every kind of caller: status, error code, nothing changed.

The endpoints come from the app itself (``app.router.routes``): a new route without a row in
``ROWS`` fails ``test_every_route_has_a_row``, and each row's URL must be served by the route it
claims. Each row is sent by every caller in ``CALLERS``; the expected answer is the row's success
status for the callers it lists as allowed, else ``401 UNAUTHORIZED`` (anonymous) or ``403
DENIED``. A refused call that could change something is bracketed by two reads of that state
with the administrator key, which must be equal; an allowed one must change it (so the read is
proven able to see the change). Allowed calls get a fresh target each, refused ones share one.

On /v2 the actions a request needs follow from its method (distribution's
``appendAccessRecords``): ``GET``/``HEAD`` pull, ``POST``/``PUT``/``PATCH`` pull and push,
``DELETE`` delete, for HTTP Basic principals and for the scope of strict tokens alike. On /api a
token acts as the principal that obtained it (``TOKEN_PRINCIPAL``).

One server for the module; the principals, feeds and images are made once.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.routing import compile_path

from tests.auth_helpers import api, bearer, create_key, grant, request_token, scope
from tests.factories import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical,
    descriptor,
    digest_of,
    make_image,
)
from tests.registry_client import error_code, push_blob, push_image
from tests.server import ServerProcess

# --- callers -------------------------------------------------------------------------------------

ANON = "anon"
PRINCIPALS = ("view", "add", "promote", "delete", "other", "personal", "feeds", "admin")
TOKENS = ("tok_pull", "tok_push", "tok_pullpush", "tok_delete", "tok_catalog")
CALLERS = (ANON, *PRINCIPALS, *TOKENS)
SIGNED_IN = frozenset(CALLERS) - {ANON}
# On /api a token stands for the principal that obtained it.
TOKEN_PRINCIPAL = {
    "tok_pull": "view",
    "tok_push": "add",
    "tok_pullpush": "personal",
    "tok_delete": "delete",
    "tok_catalog": "view",
}
# Which feeds each principal may view ("F" is the feed the keys are for, "G" the other one).
VIEWABLE: Mapping[str, frozenset[str] | None] = {
    "view": frozenset({"F"}),
    "add": frozenset(),
    "promote": frozenset(),
    "delete": frozenset(),
    "other": frozenset({"G"}),
    "personal": frozenset({"F", "G"}),
    "feeds": frozenset(),
    "admin": None,  # every feed
}

# /v2 on the repository F/app, by method: who holds the actions the method needs.
PULL = frozenset({"view", "personal", "admin", "tok_pull", "tok_pullpush"})
PULL_PUSH = frozenset({"personal", "admin", "tok_pullpush"})
DELETE = frozenset({"delete", "admin", "tok_delete"})
SCOPE_ACTIONS = {"GET": "pull", "HEAD": "pull", "POST": "pull,push", "PUT": "pull,push"}
SCOPE_ACTIONS |= {"PATCH": "pull,push", "DELETE": "delete"}

# /api, by principal (tokens inherit through TOKEN_PRINCIPAL).
ADMIN = frozenset({"admin"})
FEED_MANAGERS = frozenset({"feeds", "admin"})
VIEW_F = frozenset({"view", "personal", "admin"})
ADD_F = frozenset({"add", "personal", "admin"})
DELETE_F = frozenset({"delete", "admin"})
EVERYONE = frozenset(CALLERS)


@dataclass
class Call:
    """One concrete request; ``target`` is what ``observe`` reads back."""

    method: str
    url: str
    params: Any = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    target: Any = None


@dataclass(frozen=True)
class Row:
    id: str
    method: str
    route: str
    allowed: frozenset[str]
    ok: int | Mapping[str, int]
    build: Callable[[World, bool], Call]
    observe: Callable[[World, Call], object] | None = None
    check: Callable[[World, str, httpx.Response], None] | None = None
    changes: frozenset[str] | None = None
    """Allowed callers whose call changes the observed state (default: all allowed)."""

    @property
    def on_v2(self) -> bool:
        return self.route.startswith("/v2")

    def allows(self, caller: str) -> bool:
        if not self.on_v2:
            caller = TOKEN_PRINCIPAL.get(caller, caller)
        return caller in self.allowed

    def success(self, caller: str) -> int:
        return self.ok if isinstance(self.ok, int) else self.ok[caller]


# --- the world the rows act on -------------------------------------------------------------------


class World:
    """The feeds, principals, images and helpers every row uses."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.admin = httpx.Client(base_url=server.url, auth=server.auth, timeout=60)
        self.counter = itertools.count(1)
        self.shared: dict[str, Call] = {}
        self.paths: dict[str, set[str]] = {}
        admin = self.admin
        self.feeds = {"F": "matrix-f", "G": "matrix-g", "H": "matrix-h", "K": "matrix-k"}
        for label, name in self.feeds.items():
            body = {"name": name, "containerVersioning": label == "F"}
            assert admin.post("/api/management/feeds/create", json=body).status_code == 201
        self.F, self.G = self.feeds["F"], self.feeds["G"]
        self.repo = f"{self.F}/app"
        self.base = make_image(layers=1, seed="matrix-base")
        self.config, self.layer = list(self.base.blobs.values())
        push_image(admin, self.repo, self.base, "1.0.0")
        push_image(admin, f"{self.G}/promo", make_image(layers=1, seed="matrix-promo"), "1.0.0")
        push_image(admin, f"{self.feeds['H']}/app", make_image(1, seed="matrix-h"), "1.0.0")
        for source, target, repo in (("G", "F", "promo"), ("H", "K", "app")):
            self.promote(source, target, repo, "1.0.0", "0.1.0")

        self.keys: dict[str, str] = {
            "view": self.feed_key("F", "view"),
            "add": self.feed_key("F", "add"),
            "promote": self.feed_key("F", "promote"),
            "delete": self.feed_key("F", "delete"),
            "other": self.feed_key("G", "view", "add", "promote", "delete"),
            "feeds": create_key(admin, type="system", systemApis=["feeds"]),
            "admin": server.admin_key,
        }
        self.user = "matrix-user"
        created = admin.post(
            "/api/users/create", json={"name": self.user, "password": "matrix-password"}
        )
        assert created.status_code == 201, created.text
        grant(admin, self.user, self.F, "view", "add")
        grant(admin, self.user, self.G, "view", "promote")
        self.personal_name = "matrix-personal"
        self.keys["personal"] = create_key(
            admin, type="personal", user=self.user, displayName=self.personal_name
        )
        self.tokens = {
            "tok_pull": self.token("view", scope(self.repo, "pull")),
            "tok_push": self.token("add", scope(self.repo, "pull,push")),
            "tok_pullpush": self.token("personal", scope(self.repo, "pull,push")),
            "tok_delete": self.token("delete", scope(self.repo, "delete")),
            "tok_catalog": self.token("view", "registry:catalog:*"),
        }
        self.clients = {ANON: httpx.Client(base_url=server.url, timeout=60)}
        for name, key in self.keys.items():
            self.clients[name] = httpx.Client(base_url=server.url, auth=api(key), timeout=60)
        for name, token in self.tokens.items():
            self.clients[name] = httpx.Client(
                base_url=server.url, headers=bearer(token), timeout=60
            )

    def close(self) -> None:
        for client in [self.admin, *self.clients.values()]:
            client.close()

    def feed_key(self, label: str, *permissions: str) -> str:
        return create_key(
            self.admin, type="feed", feed=self.feeds[label], packagePermissions=list(permissions)
        )

    def token(self, principal: str, *scopes: str) -> str:
        response = request_token(self.admin, *scopes, auth=api(self.keys[principal]))
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def promote(self, source: str, target: str, repo: str, version: str, to: str) -> None:
        body = {"packageName": repo, "version": version, "toVersion": to}
        body |= {"fromFeed": self.feeds[source], "toFeed": self.feeds[target]}
        response = self.admin.post("/api/promotions/promote", json=body)
        assert response.status_code == 200, response.text

    # fresh things, made with the administrator key

    def n(self) -> int:
        return next(self.counter)

    def version(self) -> str:
        return f"1.1.{self.n()}"

    def manifest(self) -> tuple[bytes, str]:
        """A new image manifest over the base image's blobs (already in F/app)."""
        body = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, self.config),
                "layers": [descriptor(OCI_LAYER, self.layer)],
                "annotations": {"matrix": str(self.n())},
            }
        )
        return body, digest_of(body)

    def pushed(self, reference: str | None = None) -> str:
        """Push a new manifest to F/app by ``reference`` (default: its digest); its digest."""
        body, digest = self.manifest()
        response = self.admin.put(
            f"/v2/{self.repo}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
        return digest

    def blob(self, name: str | None = None) -> tuple[bytes, str]:
        data = f"matrix blob {self.n()}".encode()
        if name is not None:
            push_blob(self.admin, name, data)
        return data, digest_of(data)

    def upload(self) -> str:
        response = self.admin.post(f"/v2/{self.repo}/blobs/uploads/")
        assert response.status_code == 202, response.text
        return response.headers["Location"]

    def reserved(self) -> str:
        """A deleted (reserved) release of F/app."""
        version = self.version()
        self.pushed(version)
        deleted = self.admin.delete(f"/v2/{self.repo}/manifests/{version}")
        assert deleted.status_code == 202, deleted.text
        return version

    def user_name(self) -> str:
        name = f"matrix-user-{self.n()}"
        body = {"name": name, "password": "matrix-password"}
        assert self.admin.post("/api/users/create", json=body).status_code == 201
        return name

    def key_id(self, **spec: object) -> int:
        name = f"matrix-key-{self.n()}"
        create_key(self.admin, displayName=name, **spec)
        return self.key_where(displayName=name)["id"]

    def key_where(self, **match: object) -> dict[str, Any]:
        keys = self.admin.get("/api/api-keys/list").json()
        (found,) = [k for k in keys if all(k[f] == v for f, v in match.items())]
        return dict(found)

    # reads, with the administrator key

    def head(self, path: str) -> str | None:
        response = self.admin.head(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        return response.headers.get("Docker-Content-Digest")

    def feed(self, name: str) -> object:
        response = self.admin.get(f"/api/management/feeds/get/{name}")
        return response.json() if response.status_code == 200 else response.status_code

    def key_ids(self) -> set[int]:
        return {k["id"] for k in self.admin.get("/api/api-keys/list").json()}

    def users(self) -> dict[str, Any]:
        listed = self.admin.get("/api/users/list").json()
        return {u["name"]: u["permissions"] for u in listed}

    def visible(self, caller: str, feed: str) -> bool:
        viewable = VIEWABLE[TOKEN_PRINCIPAL.get(caller, caller)]
        labels = {name: label for label, name in self.feeds.items()}
        return viewable is None or labels.get(feed) in viewable

    def run(self, row: Row, caller: str) -> list[str]:
        """Send ``row`` as ``caller``; the problems found (empty: as expected)."""
        allowed = row.allows(caller)
        if allowed:
            call = row.build(self, True)
        else:
            if row.id not in self.shared:
                self.shared[row.id] = row.build(self, False)
            call = self.shared[row.id]
        before = row.observe(self, call) if row.observe else None
        response = self.clients[caller].request(
            call.method,
            call.url,
            params=call.params,
            json=call.json,
            content=call.content,
            headers=call.headers,
        )
        after = row.observe(self, call) if row.observe else None
        self.paths.setdefault(row.id, set()).add(httpx.URL(call.url).path)
        where = f"{row.id} as {caller}"
        problems = []
        status = row.success(caller) if allowed else 401 if caller == ANON else 403
        if response.status_code != status:
            return [f"{where}: {response.status_code} (expected {status}) {response.text[:300]}"]
        if not allowed:
            if call.method != "HEAD":
                code = error_code(response)
                expected_code = "UNAUTHORIZED" if caller == ANON else "DENIED"
                if code != expected_code:
                    problems.append(f"{where}: code {code} (expected {expected_code})")
                if row.on_v2 and call.url.startswith(f"/v2/{self.repo}/"):
                    wanted = scope(self.repo, SCOPE_ACTIONS[call.method])
                    got = response.json()["errors"][0]["detail"].get("scope")
                    if got != wanted:
                        problems.append(f"{where}: challenge scope {got} (expected {wanted})")
            if before != after:
                problems.append(f"{where}: refused, yet changed {before!r} -> {after!r}")
        elif row.observe is not None and before == after and caller in (row.changes or {caller}):
            problems.append(f"{where}: allowed, yet nothing changed ({before!r})")
        if allowed and row.check is not None and call.method != "HEAD":
            try:
                row.check(self, caller, response)
            except AssertionError as exc:
                problems.append(f"{where}: {exc}")
        return problems


# --- rows ---------------------------------------------------------------------------------------

NAME = "/v2/{name:path}"
MANIFEST = NAME + "/manifests/{reference}"
BLOB = NAME + "/blobs/{digest}"
UPLOADS = NAME + "/blobs/uploads/"
UPLOAD = NAME + "/blobs/uploads/{upload_id}"


def fixed(method: str, url: str, **kwargs: Any) -> Callable[[World, bool], Call]:
    return lambda w, fresh: Call(method, url.format(repo=w.repo, F=w.F, G=w.G), **kwargs)


def check_manifest(w: World, caller: str, response: httpx.Response) -> None:
    assert response.content == w.base.manifest, "not the base manifest"


def check_catalog(w: World, caller: str, response: httpx.Response) -> None:
    everything = w.admin.get("/v2/_catalog").json()["repositories"]
    wanted = [r for r in everything if w.visible(caller, r.split("/", 1)[0])]
    assert response.json()["repositories"] == wanted, "catalog not filtered by viewable feeds"


def check_feeds(w: World, caller: str, response: httpx.Response) -> None:
    everything = [f["name"] for f in w.admin.get("/api/management/feeds/list").json()]
    seen = [f["name"] for f in response.json()]
    if caller in FEED_MANAGERS:
        assert seen == everything, "a feed manager sees every feed"
    else:
        assert seen == [f for f in everything if w.visible(caller, f)], "feeds not filtered"


def check_keys(w: World, caller: str, response: httpx.Response) -> None:
    seen = response.json()
    if caller == "admin":
        assert {k["id"] for k in seen} == w.key_ids(), "the administrator sees every key"
    elif TOKEN_PRINCIPAL.get(caller, caller) == "personal":
        assert seen, "the personal key's user sees its keys"
        assert all(k["type"] == "personal" and k["user"] == w.user for k in seen), seen
        assert w.personal_name in {k["displayName"] for k in seen}
    else:
        assert seen == [], "a key without a user sees no keys"


def check_promotions(w: World, caller: str, response: httpx.Response) -> None:
    feed = response.request.url.params.get("feed")
    everything = w.admin.get("/api/promotions/list", params={"feed": feed} if feed else {})
    wanted = [
        r
        for r in everything.json()
        if w.visible(caller, r["fromFeed"]) or w.visible(caller, r["toFeed"])
    ]
    seen = response.json()
    assert seen == wanted, "promotions not filtered by viewable feeds"
    if w.visible(caller, w.F) or w.visible(caller, w.G):
        assert seen, "the setup made a promotion every viewer of F or G sees"


def check_tags(w: World, caller: str, response: httpx.Response) -> None:
    assert "1.0.0" in response.json()["tags"], response.text


def check_releases(w: World, caller: str, response: httpx.Response) -> None:
    assert "1.0.0" in [r["version"] for r in response.json()], response.text


def build_put_manifest(w: World, fresh: bool) -> Call:
    body, _digest = w.manifest()
    version = w.version()
    url = f"/v2/{w.repo}/manifests/{version}"
    return Call("PUT", url, content=body, headers={"Content-Type": OCI_MANIFEST}, target=url)


def build_monolithic(url: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        data, digest = w.blob()
        return Call(
            "POST", url.format(repo=w.repo), params={"digest": digest}, content=data, target=digest
        )

    return build


def build_mount(w: World, fresh: bool) -> Call:
    _data, digest = w.blob(f"{w.G}/promo")
    params = {"mount": digest, "from": f"{w.G}/promo"}
    return Call("POST", f"/v2/{w.repo}/blobs/uploads/", params=params, target=digest)


def blob_in_f(w: World, call: Call) -> str | None:
    return w.head(f"/v2/{w.repo}/blobs/{call.target}")


def manifest_at(w: World, call: Call) -> str | None:
    return w.head(call.target)


def upload_state(w: World, call: Call) -> tuple[int, str | None]:
    response = w.admin.get(call.target)
    return response.status_code, response.headers.get("Range")


def build_upload(method: str, with_body: bool = False) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        location = w.upload()
        if method == "PUT":
            data, digest = w.blob()
            return Call("PUT", location, params={"digest": digest}, content=data, target=digest)
        content = b"0123456789" if with_body else None
        return Call(method, location, content=content, target=location)

    return build


def build_delete_manifest(w: World, fresh: bool) -> Call:
    digest = w.pushed()
    return Call(
        "DELETE", f"/v2/{w.repo}/manifests/{digest}", target=f"/v2/{w.repo}/manifests/{digest}"
    )


def build_delete_blob(w: World, fresh: bool) -> Call:
    _data, digest = w.blob(w.repo)
    return Call("DELETE", f"/v2/{w.repo}/blobs/{digest}", target=digest)


def v2_rows() -> list[Row]:
    rows = []
    for method in ("GET", "HEAD"):
        lower = method.lower()
        rows += [
            Row(f"{lower} /v2/", method, "/v2/", SIGNED_IN, 200, fixed(method, "/v2/")),
            Row(f"{lower} /v2", method, "/v2", SIGNED_IN, 200, fixed(method, "/v2")),
            Row(
                f"{lower} catalog",
                method,
                "/v2/_catalog",
                frozenset(PRINCIPALS) | {"tok_catalog"},
                200,
                fixed(method, "/v2/_catalog"),
                check=check_catalog,
            ),
            Row(
                f"{lower} token",
                method,
                "/v2/_auth",
                EVERYONE,
                200,
                fixed(method, "/v2/_auth", params={"scope": "repository:matrix-f/app:pull"}),
            ),
            Row(
                f"{lower} manifest",
                method,
                MANIFEST,
                PULL,
                200,
                fixed(method, "/v2/{repo}/manifests/1.0.0"),
                check=check_manifest,
            ),
            Row(
                f"{lower} blob",
                method,
                BLOB,
                PULL,
                200,
                lambda w, fresh, m=method: Call(m, f"/v2/{w.repo}/blobs/{digest_of(w.layer)}"),
            ),
            Row(
                f"{lower} upload status",
                method,
                UPLOAD,
                PULL,
                204,
                lambda w, fresh, m=method: w.shared.setdefault(f"upload {m}", Call(m, w.upload())),
            ),
            Row(
                f"{lower} tags",
                method,
                NAME + "/tags/list",
                PULL,
                200,
                fixed(method, "/v2/{repo}/tags/list"),
                check=check_tags,
            ),
            Row(
                f"{lower} referrers",
                method,
                NAME + "/referrers/{digest}",
                PULL,
                200,
                lambda w, fresh, m=method: Call(m, f"/v2/{w.repo}/referrers/{w.base.digest}"),
            ),
        ]
    rows += [
        Row("put manifest", "PUT", MANIFEST, PULL_PUSH, 201, build_put_manifest, manifest_at),
        Row("delete manifest", "DELETE", MANIFEST, DELETE, 202, build_delete_manifest, manifest_at),
        Row(
            "post upload (monolithic)",
            "POST",
            UPLOADS,
            PULL_PUSH,
            201,
            build_monolithic("/v2/{repo}/blobs/uploads/"),
            blob_in_f,
        ),
        Row(
            "post upload without slash",
            "POST",
            NAME + "/blobs/uploads",
            PULL_PUSH,
            201,
            build_monolithic("/v2/{repo}/blobs/uploads"),
            blob_in_f,
        ),
        # The mount source needs pull: the token's claim has none on G, so an upload starts.
        Row(
            "post upload (mount from G)",
            "POST",
            UPLOADS,
            PULL_PUSH,
            {"personal": 201, "admin": 201, "tok_pullpush": 202},
            build_mount,
            blob_in_f,
            changes=frozenset({"personal", "admin"}),
        ),
        Row(
            "patch upload",
            "PATCH",
            UPLOAD,
            PULL_PUSH,
            202,
            build_upload("PATCH", True),
            upload_state,
        ),
        Row("finish upload", "PUT", UPLOAD, PULL_PUSH, 201, build_upload("PUT"), blob_in_f),
        Row("cancel upload", "DELETE", UPLOAD, DELETE, 204, build_upload("DELETE"), upload_state),
        Row("delete blob", "DELETE", BLOB, DELETE, 202, build_delete_blob, blob_in_f),
    ]
    # Unknown paths under /v2 are 404 for everyone: nothing to authorize, nothing revealed.
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        rows.append(
            Row(
                f"{method.lower()} unknown /v2 path",
                method,
                "/v2/{rest:path}",
                EVERYONE,
                404,
                fixed(method, "/v2/{repo}/no-such-endpoint"),
                check=lambda w, c, r: _assert_code(r, "UNSUPPORTED"),
            )
        )
    return rows


def _assert_code(response: httpx.Response, code: str) -> None:
    assert error_code(response) == code, response.text


def docs_rows() -> list[Row]:
    paths = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    return [
        Row(f"{m.lower()} {p}", m, p, EVERYONE, 200, fixed(m, p))
        for p in paths
        for m in ("GET", "HEAD")
    ]


# /api rows ---------------------------------------------------------------------------------------

FEEDS_API = "/api/management/feeds"


def build_create_feed(w: World, fresh: bool) -> Call:
    name = f"matrix-new-{w.n()}"
    return Call("POST", f"{FEEDS_API}/create", json={"name": name}, target=name)


def build_update_feed(w: World, fresh: bool) -> Call:
    body = {"description": f"matrix {w.n()}"}
    return Call("POST", f"{FEEDS_API}/update/{w.F}", json=body, target=w.F)


def build_delete_feed(w: World, fresh: bool) -> Call:
    created = build_create_feed(w, fresh)
    assert w.admin.post(created.url, json=created.json).status_code == 201
    return Call("DELETE", f"{FEEDS_API}/delete/{created.target}", target=created.target)


def feed_state(w: World, call: Call) -> object:
    return w.feed(call.target)


def build_purge(w: World, fresh: bool) -> Call:
    version = w.reserved()
    params = {"feed": w.F, "repo": "app", "version": version}
    return Call("POST", "/api/containers/releases/purge", params=params, target=version)


def still_reserved(w: World, call: Call) -> int:
    """409 while the release is reserved; retagging it is what a purge allows."""
    params = {"feed": w.F, "repo": "app", "target": "1.0.0", "name": call.target}
    return w.admin.post("/api/containers/tags/create", params=params).status_code


def build_create_key(spec: Callable[[World], dict[str, object]]) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        name = f"matrix-key-{w.n()}"
        return Call(
            "POST", "/api/api-keys/create", json=spec(w) | {"displayName": name}, target=name
        )

    return build


def key_named(w: World, call: Call) -> bool:
    return call.target in {k["displayName"] for k in w.admin.get("/api/api-keys/list").json()}


def build_delete_key(method: str, target: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        if target == "personal":
            key_id = w.key_id(type="personal", user=w.user)
        elif fresh:
            key_id = w.key_id(type="system", systemApis=["full-control"])
        else:  # the administrator's own key
            key_id = w.key_where(prefix=w.server.admin_key[:11])["id"]
        return Call(method, "/api/api-keys/delete", params={"id": key_id}, target=key_id)

    return build


def key_exists(w: World, call: Call) -> bool:
    return call.target in w.key_ids()


def build_create_user(w: World, fresh: bool) -> Call:
    name = f"matrix-user-{w.n()}"
    body = {"name": name, "password": "matrix-password", "systemApis": ["full-control"]}
    return Call("POST", "/api/users/create", json=body, target=name)


def build_delete_user(method: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        name = w.user_name()
        return Call(method, "/api/users/delete", params={"name": name}, target=name)

    return build


def user_state(w: World, call: Call) -> object:
    return w.users().get(call.target, "absent")


def build_grant(w: World, fresh: bool) -> Call:
    # Refused callers try to widen the personal key's own user; the administrator a new one.
    user = w.user_name() if fresh else w.user
    body = {"user": user, "feed": w.F, "permissions": ["view", "add", "promote", "delete"]}
    return Call("POST", "/api/users/permissions", json=body, target=user)


def build_promote(source: str, target: str, repo: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        to = w.version()
        body = {"packageName": repo, "version": "1.0.0", "toVersion": to}
        body |= {"fromFeed": w.feeds[source], "toFeed": w.feeds[target]}
        url = f"/v2/{w.feeds[target]}/{repo}/manifests/{to}"
        return Call("POST", "/api/promotions/promote", json=body, target=url)

    return build


def build_create_tag(force: bool) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        version = w.version()
        if force:
            w.pushed(version)  # the release exists with another image; force moves it
        params = {"feed": w.F, "repo": "app", "target": "1.0.0", "name": version}
        if force:
            params["force"] = "true"
        return Call(
            "POST",
            "/api/containers/tags/create",
            params=params,
            target=f"/v2/{w.repo}/manifests/{version}",
        )

    return build


def build_delete_tag(method: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        version = w.version()
        w.pushed(version)
        params = {"feed": w.F, "repo": "app", "tag": version}
        return Call(
            method,
            "/api/containers/tags/delete",
            params=params,
            target=f"/v2/{w.repo}/manifests/{version}",
        )

    return build


def build_delete_image(method: str) -> Callable[[World, bool], Call]:
    def build(w: World, fresh: bool) -> Call:
        digest = w.pushed()
        params = {"feed": w.F, "repo": "app", "digest": digest}
        return Call(
            method,
            "/api/containers/images/delete",
            params=params,
            target=f"/v2/{w.repo}/manifests/{digest}",
        )

    return build


def api_rows() -> list[Row]:
    repo_params = {"feed": "matrix-f", "repo": "app"}
    rows = [
        Row(
            "create feed",
            "POST",
            f"{FEEDS_API}/create",
            FEED_MANAGERS,
            201,
            build_create_feed,
            feed_state,
        ),
        Row(
            "list feeds",
            "GET",
            f"{FEEDS_API}/list",
            SIGNED_IN,
            200,
            fixed("GET", f"{FEEDS_API}/list"),
            check=check_feeds,
        ),
        Row(
            "get feed",
            "GET",
            f"{FEEDS_API}/get/{{name}}",
            VIEW_F | FEED_MANAGERS,
            200,
            fixed("GET", f"{FEEDS_API}/get/{{F}}"),
        ),
        Row(
            "update feed",
            "POST",
            f"{FEEDS_API}/update/{{name}}",
            FEED_MANAGERS,
            200,
            build_update_feed,
            feed_state,
        ),
        Row(
            "delete feed",
            "DELETE",
            f"{FEEDS_API}/delete/{{name}}",
            FEED_MANAGERS,
            200,
            build_delete_feed,
            feed_state,
        ),
        Row(
            "list releases",
            "GET",
            "/api/containers/releases",
            VIEW_F,
            200,
            fixed("GET", "/api/containers/releases", params=repo_params),
            check=check_releases,
        ),
        Row(
            "purge release",
            "POST",
            "/api/containers/releases/purge",
            ADMIN,
            200,
            build_purge,
            still_reserved,
        ),
        Row(
            "create full-control key",
            "POST",
            "/api/api-keys/create",
            ADMIN,
            200,
            build_create_key(lambda w: {"type": "system", "systemApis": ["full-control"]}),
            key_named,
        ),
        Row(
            "create a wider key for F",
            "POST",
            "/api/api-keys/create",
            ADMIN,
            200,
            build_create_key(
                lambda w: {
                    "type": "feed",
                    "feed": w.F,
                    "packagePermissions": ["view", "add", "promote", "delete"],
                }
            ),
            key_named,
        ),
        Row(
            "create a personal key",
            "POST",
            "/api/api-keys/create",
            ADMIN,
            200,
            build_create_key(lambda w: {"type": "personal", "user": w.user}),
            key_named,
        ),
        Row(
            "list keys",
            "GET",
            "/api/api-keys/list",
            SIGNED_IN,
            200,
            fixed("GET", "/api/api-keys/list"),
            check=check_keys,
        ),
        Row("create user", "POST", "/api/users/create", ADMIN, 201, build_create_user, user_state),
        Row("list users", "GET", "/api/users/list", ADMIN, 200, fixed("GET", "/api/users/list")),
        Row(
            "grant permissions",
            "POST",
            "/api/users/permissions",
            ADMIN,
            200,
            build_grant,
            user_state,
        ),
        Row(
            "promote G to F (no view on G)",
            "POST",
            "/api/promotions/promote",
            ADMIN,
            200,
            build_promote("G", "F", "promo"),
            manifest_at,
        ),
        Row(
            "promote F to G",
            "POST",
            "/api/promotions/promote",
            frozenset({"personal", "admin"}),
            200,
            build_promote("F", "G", "app"),
            manifest_at,
        ),
        Row(
            "list promotions of F",
            "GET",
            "/api/promotions/list",
            VIEW_F,
            200,
            fixed("GET", "/api/promotions/list", params={"feed": "matrix-f"}),
            check=check_promotions,
        ),
        Row(
            "list promotions",
            "GET",
            "/api/promotions/list",
            frozenset(PRINCIPALS),
            200,
            fixed("GET", "/api/promotions/list"),
            check=check_promotions,
        ),
        Row(
            "create tag",
            "POST",
            "/api/containers/tags/create",
            ADD_F,
            201,
            build_create_tag(False),
            manifest_at,
        ),
        Row(
            "move a release (force)",
            "POST",
            "/api/containers/tags/create",
            ADMIN,
            200,
            build_create_tag(True),
            manifest_at,
        ),
        Row(
            "tag history",
            "GET",
            "/api/containers/tags/history",
            VIEW_F,
            200,
            fixed("GET", "/api/containers/tags/history", params=repo_params),
        ),
    ]
    for method in ("POST", "DELETE"):
        lower = method.lower()
        rows += [
            Row(
                f"{lower} delete the admin's key",
                method,
                "/api/api-keys/delete",
                ADMIN,
                200,
                build_delete_key(method, "admin"),
                key_exists,
            ),
            Row(
                f"{lower} delete a personal key",
                method,
                "/api/api-keys/delete",
                frozenset({"personal", "admin"}),
                200,
                build_delete_key(method, "personal"),
                key_exists,
            ),
            Row(
                f"{lower} delete user",
                method,
                "/api/users/delete",
                ADMIN,
                200,
                build_delete_user(method),
                user_state,
            ),
            Row(
                f"{lower} delete tag",
                method,
                "/api/containers/tags/delete",
                DELETE_F,
                200,
                build_delete_tag(method),
                manifest_at,
            ),
            Row(
                f"{lower} delete image",
                method,
                "/api/containers/images/delete",
                DELETE_F,
                200,
                build_delete_image(method),
                manifest_at,
            ),
        ]
    return rows


ROWS = [*v2_rows(), *docs_rows(), *api_rows()]


# --- the routes the app serves -------------------------------------------------------------------


def _flatten(routes: list[Any]) -> Iterator[tuple[str, frozenset[str]]]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:  # newer FastAPI keeps an included router as one entry
            for path, methods in _flatten(nested.routes):
                yield route.include_context.prefix + path, methods
        else:
            yield route.path, frozenset(route.methods or {"GET", "HEAD"})


def served_routes() -> list[tuple[str, frozenset[str]]]:
    """Path templates and methods of every route of the app, in matching order."""
    from semreg.api.app import create_app
    from semreg.config import Settings

    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings(data_dir=data))
    return list(_flatten(app.router.routes))


SERVED = served_routes()


def route_of(method: str, path: str) -> str | None:
    """The template of the route that serves ``method path`` (the first match wins)."""
    for template, methods in SERVED:
        regex, _format, _convertors = compile_path(template)
        if method in methods and regex.match(path):
            return template
    return None


def test_every_route_has_a_row():
    served = {(m, path) for path, methods in SERVED for m in methods}
    covered = {(row.method, row.route) for row in ROWS}
    assert sorted(served - covered) == [], "endpoints without a row in the matrix"
    assert sorted(covered - served) == [], "rows for endpoints the app does not serve"
    assert len({row.id for row in ROWS}) == len(ROWS)


# --- the matrix ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(database_factory, tmp_path_factory) -> Iterator[World]:
    server = ServerProcess(
        tmp_path_factory.mktemp("matrix"), database_factory(), SEMREG_AUTH__TOKEN_TTL_SECONDS="3600"
    ).start()
    built = World(server)
    yield built
    built.close()
    server.stop()


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_every_caller(world, row):
    problems = [p for caller in CALLERS for p in world.run(row, caller)]
    assert problems == [], "\n".join(problems)
    for path in world.paths[row.id]:
        assert route_of(row.method, path) == row.route, f"{path} is not served by {row.route}"
