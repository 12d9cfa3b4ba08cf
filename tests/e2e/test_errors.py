"""Every error class of ``semreg.domain.errors`` triggered end to end, with its code and status.

``TRIGGERS`` maps each class to a request that makes a real ``semreg serve`` raise it, the status
docs/api.md promises, and a fragment of the message that names the condition (so a subclass that
shares its parent's code, such as ``FeedUnknown`` and ``NameUnknown``, is told apart).
``test_every_error_class_has_a_trigger`` walks the class tree: a new error class without a
trigger here fails it. ``RegistryError`` itself stands for the 500 envelope (code ``UNKNOWN``),
reached by breaking the blob store under a running server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from semreg.api.errors import status_of
from semreg.domain import errors as e
from tests.auth_helpers import api, create_user, feed_key
from tests.conftest import unique
from tests.factories import OCI_MANIFEST, digest_of, make_image
from tests.registry_client import error_code, push_image, push_manifest
from tests.server import ServerProcess

MISSING = "sha256:" + "0" * 64


@dataclass
class Env:
    registry: ServerProcess
    admin: httpx.Client
    anonymous: httpx.Client
    database_factory: Callable[[], str]
    tmp_path: Path

    def feed(self, **settings: object) -> str:
        name = unique("err")
        body = {"name": name, **settings}
        response = self.admin.post("/api/management/feeds/create", json=body)
        assert response.status_code == 201, response.text
        return name

    def repo(self, **settings: object) -> str:
        """A repository holding one image tagged 1.0.0."""
        name = f"{self.feed(**settings)}/app"
        push_image(self.admin, name, make_image(1, seed=unique("err")), "1.0.0")
        return name

    def upload(self, name: str) -> str:
        response = self.admin.post(f"/v2/{name}/blobs/uploads/")
        assert response.status_code == 202, response.text
        return response.headers["Location"]


# --- triggers ------------------------------------------------------------------------------------


def internal_error(env: Env) -> httpx.Response:
    """A manifest whose bytes cannot be read (a directory where the file should be): 500."""
    data_dir = env.tmp_path / "broken"
    server = ServerProcess(data_dir, env.database_factory()).start()
    name, image = "broken/app", make_image(1, seed=unique("broken"))
    try:
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as admin:
            assert admin.post("/api/management/feeds/create", json={"name": "broken"}).is_success
            push_image(admin, name, image, "1.0.0")
    finally:
        server.stop()  # a new process: its manifest cache does not hold the bytes
    (stored,) = [p for p in data_dir.rglob(image.digest.split(":")[1]) if p.is_file()]
    stored.unlink()
    stored.mkdir()
    server.start()
    try:
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as admin:
            response = admin.get(f"/v2/{name}/manifests/1.0.0")
            response.read()
            assert "Traceback" not in response.text
            assert "failed to handle request" in server.log()
            return response
    finally:
        server.stop()


def upload_lost_its_data(env: Env) -> httpx.Response:
    name = f"{env.feed()}/app"
    location = env.upload(name)
    data = b"0123456789"
    patched = env.admin.patch(location, content=data, headers={"Content-Range": "0-9"})
    assert patched.status_code == 202, patched.text
    upload_id = location.rsplit("/", 1)[1]
    (folder,) = [p for p in env.registry.data_dir.rglob(upload_id) if p.is_dir()]
    shutil.rmtree(folder)
    return env.admin.put(location, params={"digest": digest_of(data)})


def malformed_content_range(env: Env) -> httpx.Response:
    location = env.upload(f"{env.feed()}/app")
    return env.admin.patch(location, content=b"abc", headers={"Content-Range": "bytes=a-c"})


def unknown_upload(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.repo()}/blobs/uploads/{uuid.uuid4()}")


def mismatching_digest(env: Env) -> httpx.Response:
    name = f"{env.feed()}/app"
    return env.admin.post(f"/v2/{name}/blobs/uploads/", params={"digest": MISSING}, content=b"x")


def unsupported_algorithm(env: Env) -> httpx.Response:
    name = f"{env.feed()}/app"
    return env.admin.post(f"/v2/{name}/blobs/uploads/", params={"digest-algorithm": "md5"})


def manifest_without_its_blobs(env: Env) -> httpx.Response:
    return push_manifest(env.admin, f"{env.feed()}/app", "1.0.0", make_image(1, seed=unique("m")))


def manifest_not_json(env: Env) -> httpx.Response:
    return env.admin.put(
        f"/v2/{env.feed()}/app/manifests/1.0.0",
        content=b"{not json",
        headers={"Content-Type": OCI_MANIFEST},
    )


def manifest_too_large(env: Env) -> httpx.Response:
    return env.admin.put(
        f"/v2/{env.feed()}/app/manifests/1.0.0",
        content=b" " * (4 * 1024 * 1024 + 1),
        headers={"Content-Type": OCI_MANIFEST},
    )


def unknown_manifest(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.repo()}/manifests/9.9.9")


def invalid_name(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.feed()}/Upper/tags/list")


def unknown_repository(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.feed()}/nothing-here/tags/list")


def unknown_feed(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{unique('nofeed')}/app/tags/list")


def chunk_shorter_than_announced(env: Env) -> httpx.Response:
    location = env.upload(f"{env.feed()}/app")
    return env.admin.patch(location, content=b"01234", headers={"Content-Range": "0-9"})


def no_credentials(env: Env) -> httpx.Response:
    return env.anonymous.get("/v2/")


def key_of_another_feed(env: Env) -> httpx.Response:
    key = feed_key(env.admin, env.feed(), "view")
    return env.anonymous.get(f"/v2/{env.repo()}/tags/list", auth=api(key))


def disabled_feed(env: Env) -> httpx.Response:
    name = env.repo()
    feed = name.split("/")[0]
    disabled = env.admin.post(f"/api/management/feeds/update/{feed}", json={"active": False})
    assert disabled.status_code == 200, disabled.text
    return env.admin.get(f"/v2/{name}/tags/list")


def wrong_method(env: Env) -> httpx.Response:
    return env.admin.post(f"/v2/{env.repo()}/tags/list")


def range_beyond_the_blob(env: Env) -> httpx.Response:
    name, image = f"{env.feed()}/app", make_image(1, seed=unique("range"))
    push_image(env.admin, name, image, "1.0.0")
    layer = next(iter(image.blobs))
    return env.admin.get(f"/v2/{name}/blobs/{layer}", headers={"Range": "bytes=100000000-"})


def no_such_endpoint(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.repo()}/no-such-endpoint")


def invalid_page_size(env: Env) -> httpx.Response:
    return env.admin.get(f"/v2/{env.repo()}/tags/list", params={"n": "ten"})


def too_many_failed_sign_ins(env: Env) -> httpx.Response:
    user, password = create_user(env.admin)
    for attempt in range(10):  # the default failure limit
        failed = env.anonymous.get("/v2/", auth=(user, f"wrong-{attempt}"))
        assert failed.status_code == 401, failed.text
        assert error_code(failed) == "UNAUTHORIZED"
    return env.anonymous.get("/v2/", auth=(user, password))


def virtual_tag_push(env: Env) -> httpx.Response:
    name = env.repo(containerVersioning=True)
    image = make_image(1, seed=unique("virtual"))
    push_image(env.admin, name, image)
    return push_manifest(env.admin, name, "latest", image)


def release_moved(env: Env) -> httpx.Response:
    name = env.repo(containerVersioning=True)
    other = make_image(1, seed=unique("other"))
    push_image(env.admin, name, other)
    return push_manifest(env.admin, name, "1.0.0", other)


def retag_without_force(env: Env) -> httpx.Response:
    name = env.repo()
    feed, repo = name.split("/", 1)
    other = make_image(1, seed=unique("other"))
    push_image(env.admin, name, other, "stable")
    params = {"feed": feed, "repo": repo, "target": "1.0.0", "name": "stable"}
    return env.admin.post("/api/containers/tags/create", params=params)


def full_disk(env: Env) -> httpx.Response:
    """A blob store on a 1 MiB file system of its own, filled up: 507."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = env.tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        server = ServerProcess(
            env.tmp_path / "full", env.database_factory(), SEMREG_STORAGE__BACKEND__PATH=str(disk)
        ).start()
        try:
            with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as admin:
                assert admin.post("/api/management/feeds/create", json={"name": "full"}).is_success
                # Unbuffered: the write that finds the disk full raises; close flushes nothing.
                with (
                    open(disk / "filler", "wb", buffering=0) as filler,
                    contextlib.suppress(OSError),
                ):
                    while True:
                        filler.write(b"\0" * 65536)
                data = b"y" * 300_000
                return admin.post(
                    "/v2/full/app/blobs/uploads/", params={"digest": digest_of(data)}, content=data
                )
        finally:
            server.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def bad_key_type(env: Env) -> httpx.Response:
    return env.admin.post("/api/api-keys/create", json={"type": "bogus", "systemApis": ["feeds"]})


# error class -> (trigger, status, a fragment of the message)
TRIGGERS: dict[type[e.RegistryError], tuple[Callable[[Env], httpx.Response], int, str]] = {
    e.RegistryError: (internal_error, 500, "internal error"),
    e.BlobUnknown: (
        lambda env: env.admin.get(f"/v2/{env.repo()}/blobs/{MISSING}"),
        404,
        "is not in",
    ),
    e.BlobUploadInvalid: (upload_lost_its_data, 400, "lost its data"),
    e.RangeInvalid: (malformed_content_range, 416, "invalid Content-Range"),
    e.BlobUploadUnknown: (unknown_upload, 404, "is not known in"),
    e.DigestInvalid: (mismatching_digest, 400, "the uploaded bytes have digest"),
    e.DigestUnsupported: (unsupported_algorithm, 400, "unsupported digest algorithm"),
    e.ManifestBlobUnknown: (manifest_without_its_blobs, 400, "does not hold"),
    e.ManifestInvalid: (manifest_not_json, 400, "JSON"),
    e.ManifestTooLarge: (manifest_too_large, 413, "byte limit"),
    e.ManifestUnknown: (unknown_manifest, 404, "manifest 9.9.9 is not in"),
    e.NameInvalid: (invalid_name, 400, "invalid repository name"),
    e.NameUnknown: (unknown_repository, 404, "is not known"),
    e.FeedUnknown: (unknown_feed, 404, "does not exist"),
    e.SizeInvalid: (chunk_shorter_than_announced, 400, "received 5 bytes"),
    e.Unauthorized: (no_credentials, 401, "authentication required"),
    e.Denied: (key_of_another_feed, 403, "may not pull"),
    e.FeedInactive: (disabled_feed, 403, "is disabled"),
    e.Unsupported: (wrong_method, 405, "POST is not supported"),
    e.RangeNotSatisfiable: (range_beyond_the_blob, 416, "not satisfiable"),
    e.RouteUnknown: (no_such_endpoint, 404, "no endpoint at"),
    e.PaginationInvalid: (invalid_page_size, 400, "invalid n="),
    e.TooManyRequests: (too_many_failed_sign_ins, 429, "too many failed sign-ins"),
    e.TagInvalid: (virtual_tag_push, 400, "managed by semreg"),
    e.ReleaseImmutable: (release_moved, 409, "releases are immutable"),
    e.Conflict: (retag_without_force, 409, "already points at"),
    e.RequestInvalid: (bad_key_type, 400, "unknown key type"),
    e.InsufficientStorage: (full_disk, 507, "no space left on device"),
}


def error_classes() -> set[type[e.RegistryError]]:
    found: set[type[e.RegistryError]] = set()
    pending = [e.RegistryError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending += cls.__subclasses__()
    return found


def test_every_error_class_has_a_trigger():
    missing = sorted(c.__name__ for c in error_classes() - set(TRIGGERS))
    assert missing == [], "error classes without an end-to-end trigger in TRIGGERS"


@pytest.fixture
def env(registry, client, anonymous_client, database_factory, tmp_path) -> Env:
    return Env(registry, client, anonymous_client, database_factory, tmp_path)


@pytest.mark.parametrize("error", list(TRIGGERS), ids=lambda cls: cls.__name__)
def test_error_end_to_end(env, error):
    trigger, status, fragment = TRIGGERS[error]
    response = trigger(env)
    assert response.status_code == status, response.text
    assert status_of(error("")) == status  # the one mapping in api/errors.py agrees
    assert response.headers["Content-Type"] == "application/json"
    (entry,) = response.json()["errors"]
    assert entry["code"] == error.code, response.text
    assert fragment in entry["message"], entry["message"]
    assert isinstance(entry["detail"], dict)
