"""Garbage collection never loses an acknowledged push, whatever the grace period.

A server of its own takes pushes, deletions and re-pushes from two clients while the collector
runs in a loop with a grace period of zero; then the server restarts (no cache can hide a loss)
and every image acknowledged and not deleted is pulled back byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest

from semreg.metadata.engine import Database, create_engine
from semreg.services.gc import GarbageCollector, GcReport
from semreg.storage.filesystem import FilesystemBlobStore
from tests.conftest import unique
from tests.factories import OCI_LAYER, Image, canonical, digest_of, make_image
from tests.registry_client import push_manifest
from tests.server import ServerProcess

ROUNDS = 80
IMAGES_PER_CLIENT = 5


@pytest.fixture(scope="module")
def gc_server(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("gc-race"), database_factory()).start()
    yield server
    server.stop()


def database_url(server: ServerProcess) -> str:
    return server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'semreg.db'}"


def collect_until(server: ServerProcess, stop: threading.Event, reports: list[GcReport]) -> None:
    async def loop() -> None:
        engine = create_engine(database_url(server))
        collector = GarbageCollector(Database(engine), FilesystemBlobStore(server.data_dir))
        try:
            while not stop.is_set():
                reports.append(await collector.run(grace=timedelta(0)))
        finally:
            await engine.dispose()

    asyncio.run(loop())


@dataclass
class Client:
    """One pushing client: its repository, its images and what the server acknowledged."""

    server: ServerProcess
    name: str
    images: list[Image]
    live: dict[int, bool] = field(default_factory=dict)
    acknowledged: int = 0
    unexpected: list[str] = field(default_factory=list)
    missing_after_ack: list[str] = field(default_factory=list)

    def run(self, seed: int) -> None:
        chance = random.Random(seed)
        with httpx.Client(base_url=self.server.url, auth=self.server.auth, timeout=60) as http:
            for i in range(len(self.images)):
                self.step(http, "push", i)
            for _ in range(ROUNDS):
                i = chance.randrange(len(self.images))
                action = chance.choice(["push", "flap", "flap", "delete", "unlink", "repush"])
                self.step(http, action, i)

    def step(self, http: httpx.Client, action: str, i: int) -> None:
        image, tag = self.images[i], f"t{i}"
        if action == "push":
            for data in image.blobs.values():
                self.expect(
                    http.post(self._uploads(), params={"digest": digest_of(data)}, content=data)
                )
            self.manifest(http, image, tag, i)
        elif action == "flap" and self.live.get(i):
            # Deleted and pushed again at once: between the two its bytes are unreferenced, and
            # the push finds them still stored (the window the audit lost manifests in).
            self.expect(http.delete(f"/v2/{self.name}/manifests/{image.digest}"), 202)
            self.live[i] = False
            self.manifest(http, image, tag, i)
        elif action == "repush" and self.live.get(i):
            # The manifest again, blobs untouched: its bytes may have been collected meanwhile.
            self.manifest(http, image, tag, i)
        elif action == "delete" and self.live.get(i):
            self.expect(http.delete(f"/v2/{self.name}/manifests/{image.digest}"), 202)
            self.live[i] = False
        elif action == "unlink" and not self.live.get(i):
            # Only blobs no live image of this repository needs (not the shared layer).
            needed = {d for j, live in self.live.items() if live for d in self.images[j].blobs}
            for digest in set(image.blobs) - needed:
                response = http.delete(f"/v2/{self.name}/blobs/{digest}")
                self.expect(response, 202, 404)

    def manifest(self, http: httpx.Client, image: Image, tag: str, i: int) -> None:
        if self.expect(push_manifest(http, self.name, tag, image), 201):
            self.live[i] = True
            self.acknowledged += 1
            # Right after the answer, before anything of this client could unreference them:
            # the image's bytes are stored (a later re-push would write them again and hide it).
            for digest in (image.digest, *image.blobs):
                if not stored(self.server, digest):
                    self.missing_after_ack.append(f"{self.name}: {digest}")

    def expect(self, response: httpx.Response, *statuses: int) -> bool:
        if response.status_code in (statuses or (201,)):
            return True
        self.unexpected.append(f"{response.request.method} {response.status_code} {response.text}")
        return False

    def _uploads(self) -> str:
        return f"/v2/{self.name}/blobs/uploads/"


def stored(server: ServerProcess, digest: str) -> bool:
    algorithm, hex_ = digest.split(":")
    return (server.data_dir / "blobs" / algorithm / hex_[:2] / hex_).is_file()


def pulled(http: httpx.Client, path: str, headers: dict[str, str] | None = None) -> bytes | str:
    """The body of a GET, or what went wrong (a status, or the server cutting the body short)."""
    try:
        response = http.get(path, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return response.content if response.status_code == 200 else f"status {response.status_code}"


def lost_images(server: ServerProcess, client: Client) -> list[str]:
    lost = []
    with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
        for i, live in client.live.items():
            if not live:
                continue
            image = client.images[i]
            path = f"/v2/{client.name}/manifests/{image.digest}"
            got = pulled(http, path, {"Accept": "*/*"})
            if got != image.manifest:
                lost.append(f"{client.name}@{image.digest}: manifest {got!r:.60}")
            for digest, data in image.blobs.items():
                got = pulled(http, f"/v2/{client.name}/blobs/{digest}")
                if got != data:
                    lost.append(f"{client.name}@{image.digest}: blob {digest} {got!r:.60}")
    return lost


def test_gc_in_a_loop_loses_no_acknowledged_push(gc_server):
    feed = unique("gcfeed")
    with httpx.Client(base_url=gc_server.url, auth=gc_server.auth, timeout=60) as admin:
        created = admin.post(
            "/api/management/feeds/create", json={"name": feed, "feedType": "docker"}
        )
        assert created.status_code == 201, created.text
    # Two clients, each with its own repository; a layer shared by every image of both makes
    # the same bytes referenced, unreferenced and referenced again all the time.
    shared = make_image(1, seed="gc-shared").blobs
    clients = []
    for c in range(2):
        images = [
            _with_shared_layer(make_image(1, seed=unique(f"gc-{c}-{i}")), shared)
            for i in range(IMAGES_PER_CLIENT)
        ]
        clients.append(Client(gc_server, f"{feed}/app{c}", images))

    stop, reports = threading.Event(), []
    collector = threading.Thread(target=collect_until, args=(gc_server, stop, reports))
    collector.start()
    started = time.monotonic()
    try:
        workers = [threading.Thread(target=c.run, args=(n,)) for n, c in enumerate(clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        stop.set()
        collector.join()
    elapsed = time.monotonic() - started

    for client in clients:
        assert client.unexpected == [], client.unexpected[:5]
    gc_server.stop()
    gc_server.start()
    lost = [entry for client in clients for entry in lost_images(gc_server, client)]
    lost += [entry for client in clients for entry in client.missing_after_ack]
    acknowledged = sum(c.acknowledged for c in clients)
    collected = sum(r.blobs_deleted for r in reports)
    print(
        f"gc race: {acknowledged} acknowledged manifest pushes, {len(reports)} gc runs "
        f"collecting {collected} blobs in {elapsed:.1f} s, lost {len(lost)}"
    )
    assert collected > 0, "the collector never collected anything: the race was not exercised"
    assert lost == [], lost[:5]


def _with_shared_layer(image: Image, shared: dict[str, bytes]) -> Image:
    """``image`` with one more layer that every image of the test has."""
    manifest = json.loads(image.manifest)
    for digest, data in shared.items():
        manifest["layers"].append({"mediaType": OCI_LAYER, "digest": digest, "size": len(data)})
    return Image(canonical(manifest), image.media_type, image.blobs | shared)
