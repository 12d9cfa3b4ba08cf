"""SIGKILL at every step of a push, a promotion and a collection; then what a restart finds.

For each crash point of ``semreg.crashpoints`` a real ``semreg serve`` (or ``semreg gc``) is
started with that point armed, a workload runs until the process kills itself there, and the
server is started again, unarmed. Then, for the whole data folder and database:

- every stored blob hashes to its digest;
- every manifest, blob link and manifest reference has its bytes;
- every virtual tag (``latest``, ``N``, ``N.M``) is what the releases imply;
- every push acknowledged before the kill pulls back byte for byte;
- an upload interrupted by the kill resumes from what its session reports.

``INJECTIONS`` kills per point run in ``make test`` on SQLite and PostgreSQL; the figures in
docs/reliability.md come from ``SEMREG_CRASH_INJECTIONS=10``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from semreg.crashpoints import POINTS
from semreg.domain.semver import parse_version
from semreg.domain.tags import virtual_tags
from semreg.metadata.engine import create_engine
from tests.conftest import unique
from tests.factories import digest_of, make_image
from tests.server import ServerProcess, semreg_command

INJECTIONS = int(os.environ.get("SEMREG_CRASH_INJECTIONS", "1"))
MIB = 1024 * 1024
SERVER_POINTS = sorted(POINTS - {"gc.deleting"})


@dataclass
class World:
    """One server's data folder and database, kept across its crashes and restarts."""

    data_dir: Path
    database_url: str
    admin_key: str = field(default_factory=lambda: f"semreg_test-admin-{unique('k')}")
    dev: str = field(default_factory=lambda: unique("dev"))
    prod: str = field(default_factory=lambda: unique("prod"))
    acknowledged_blobs: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    acknowledged_images: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    interrupted: list[tuple[str, str, bytes]] = field(default_factory=list)
    releases: int = 0

    def server(self, **env: str) -> ServerProcess:
        server = ServerProcess(
            self.data_dir,
            self.database_url,
            admin_key=self.admin_key,
            # A server that kills itself writes no coverage data, and the restarts only repeat
            # what other tests cover: spare them the slower start under coverage.
            coverage=False,
            SEMREG_STORAGE__UPLOAD_CHECKPOINT_MIB="1",
            SEMREG_STORAGE__UPLOAD_CHECKPOINT_SECONDS="0",
            **env,
        )
        server.log_path = self.data_dir.parent / f"{self.data_dir.name}-{unique('log')}.log"
        return server

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'semreg.db'}"


@pytest.fixture(scope="module")
def world(database_factory, tmp_path_factory) -> Iterator[World]:
    """One data folder and database for every injection of the module (on one backend)."""
    world = World(tmp_path_factory.mktemp("crashes") / "data", database_factory())
    server = world.server().start()
    try:
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
            for feed in (world.dev, world.prod):
                body = {"name": feed, "feedType": "docker", "containerVersioning": True}
                created = http.post("/api/management/feeds/create", json=body)
                assert created.status_code == 201, created.text
    finally:
        server.stop()
    return world


# --- the workload ---------------------------------------------------------------------------


class Died(Exception):
    """The server went away: the crash point fired."""


def call(method: str, http: httpx.Client, *args: object, **kwargs: object) -> httpx.Response:
    try:
        return getattr(http, method)(*args, **kwargs)
    except httpx.TransportError as exc:
        raise Died from exc


def chunked_push(world: World, http: httpx.Client, repo: str, data: bytes) -> None:
    started = call("post", http, f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    half = len(data) // 2
    for start, chunk in ((0, data[:half]), (half, data[half:])):
        headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}"}
        try:
            response = call("patch", http, location, content=chunk, headers=headers)
        except Died:
            world.interrupted.append((repo, location, data))
            raise
        assert response.status_code == 202, response.text
    finished = call("put", http, location, params={"digest": digest_of(data)})
    assert finished.status_code == 201, finished.text
    world.acknowledged_blobs[digest_of(data)] = (repo, data)


def run_workload(world: World, server: ServerProcess) -> None:
    """Push, release and promote until the server dies (or the rounds run out)."""
    repo = f"{world.dev}/app"
    with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
        for _ in range(5 + INJECTIONS):  # enough visits of every point for every injection
            world.releases += 1
            version = f"1.{world.releases}.0"
            chunked_push(world, http, repo, os.urandom(3 * MIB + 12345))
            image = make_image(2, seed=unique("crash"))
            for digest, blob in image.blobs.items():
                response = call(
                    "post",
                    http,
                    f"/v2/{repo}/blobs/uploads/",
                    params={"digest": digest},
                    content=blob,
                )
                assert response.status_code == 201, response.text
                world.acknowledged_blobs[digest] = (repo, blob)
            response = call(
                "put",
                http,
                f"/v2/{repo}/manifests/{version}",
                content=image.manifest,
                headers={"Content-Type": image.media_type},
            )
            assert response.status_code == 201, response.text
            world.acknowledged_images[f"{repo}:{version}"] = (image.digest, image.manifest)
            promoted = call(
                "post",
                http,
                "/api/promotions/promote",
                json={
                    "packageName": "app",
                    "version": version,
                    "fromFeed": world.dev,
                    "toFeed": world.prod,
                },
            )
            assert promoted.status_code == 200, promoted.text
            world.acknowledged_images[f"{world.prod}/app:{version}"] = (
                image.digest,
                image.manifest,
            )


# --- what a restart must find ---------------------------------------------------------------


def check_store(world: World) -> list[str]:
    """Every stored blob hashes to its name; everything metadata references is stored."""
    problems = []
    blobs = world.data_dir / "blobs"
    stored = set()
    for path in blobs.glob("*/*/*"):
        algorithm, hex_ = path.parent.parent.name, path.name
        stored.add(f"{algorithm}:{hex_}")
        if hashlib.new(algorithm, path.read_bytes()).hexdigest() != hex_:
            problems.append(f"{algorithm}:{hex_} holds other bytes")

    async def referenced() -> list[tuple[str, str]]:
        engine = create_engine(world.sqlalchemy_url)
        try:
            async with engine.connect() as conn:
                rows = []
                for table in ("manifests", "repository_blobs", "manifest_refs"):
                    query = sa.text(f"SELECT DISTINCT digest FROM {table}")
                    rows += [(table, d) for d in (await conn.execute(query)).scalars()]
                return rows
        finally:
            await engine.dispose()

    for table, digest in asyncio.run(referenced()):
        if digest not in stored:
            problems.append(f"{table} references {digest}, whose bytes are missing")
    return problems


def check_virtual_tags(world: World) -> list[str]:
    async def read() -> tuple[list[tuple[int, str, int]], list[tuple[int, str, int]]]:
        engine = create_engine(world.sqlalchemy_url)
        try:
            async with engine.connect() as conn:
                releases = (
                    await conn.execute(
                        sa.text("SELECT repository_id, tag, manifest_id FROM releases")
                    )
                ).all()
                virtual = (
                    await conn.execute(
                        sa.text(
                            "SELECT repository_id, name, manifest_id FROM tags"
                            " WHERE kind = 'virtual'"
                        )
                    )
                ).all()
                return [tuple(r) for r in releases], [tuple(v) for v in virtual]
        finally:
            await engine.dispose()

    releases, virtual = asyncio.run(read())
    problems = []
    for repository in {r[0] for r in releases} | {v[0] for v in virtual}:
        manifest_of = {parse_version(t): m for r, t, m in releases if r == repository}
        expected = {name: manifest_of[v] for name, v in virtual_tags(manifest_of).items()}
        found = {name: m for r, name, m in virtual if r == repository}
        if expected != found:
            problems.append(f"repository {repository}: virtual tags {found} != {expected}")
    return problems


def check_pulls(world: World, server: ServerProcess) -> list[str]:
    problems = []
    with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
        for digest, (repo, data) in world.acknowledged_blobs.items():
            response = http.get(f"/v2/{repo}/blobs/{digest}")
            if response.status_code != 200 or response.content != data:
                problems.append(f"blob {digest}: {response.status_code}")
        for reference, (digest, manifest) in world.acknowledged_images.items():
            repo, tag = reference.rsplit(":", 1)
            for ref in (tag, digest):
                response = http.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": "*/*"})
                if response.status_code != 200 or response.content != manifest:
                    problems.append(f"manifest {repo}:{ref}: {response.status_code}")
        for repo, location, data in world.interrupted:
            status = http.get(location)
            if status.status_code != 204:
                problems.append(f"interrupted upload {location}: {status.status_code}")
                continue
            size = (
                int(status.headers["Range"].split("-")[1]) + 1
                if status.headers["Range"] != "0-0"
                else 0
            )
            resumed = 202  # nothing left to send when the killed chunk had been recorded
            if size < len(data):
                rest = {"Content-Range": f"{size}-{len(data) - 1}"}
                resumed = http.patch(location, content=data[size:], headers=rest).status_code
            done = http.put(location, params={"digest": digest_of(data)})
            if resumed != 202 or done.status_code != 201:
                problems.append(f"resume of {location}: {resumed}/{done.status_code}")
            world.acknowledged_blobs[digest_of(data)] = (repo, data)
        world.interrupted.clear()
    return problems


def check_everything(world: World) -> None:
    server = world.server().start()
    try:
        problems = check_store(world) + check_virtual_tags(world) + check_pulls(world, server)
    finally:
        server.stop()
    assert problems == [], problems[:10]


# --- the injections -------------------------------------------------------------------------


def wait_dead(server: ServerProcess) -> int:
    assert server.process is not None
    code = server.process.wait(timeout=60)
    server.process = None
    return code


@pytest.mark.parametrize("point", SERVER_POINTS)
def test_sigkill_at_each_step_of_a_push_loses_nothing(world, point):
    for injection in range(INJECTIONS):
        server = world.server(
            SEMREG_TESTING__CRASH_POINT=point, SEMREG_TESTING__CRASH_AFTER=str(1 + injection)
        ).start()
        worker = threading.Thread(target=_run_until_death, args=(world, server))
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert wait_dead(server) == -9, f"{point} was never reached"
        check_everything(world)


def _run_until_death(world: World, server: ServerProcess) -> None:
    try:
        run_workload(world, server)
    except Died:
        return


def test_sigkill_during_gc_loses_nothing(world):
    server = world.server().start()
    try:
        run_workload(world, server)
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
            # Garbage to collect: images deleted from the dev feed (prod keeps its copies), the
            # chunked blobs unlinked, and blobs pushed and unlinked again.
            for reference, (digest, _) in list(world.acknowledged_images.items()):
                repo = reference.rsplit(":", 1)[0]
                if repo.startswith(world.dev):
                    assert http.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
                    del world.acknowledged_images[reference]
            for digest, (repo, data) in list(world.acknowledged_blobs.items()):
                if len(data) > MIB:
                    assert http.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
                    del world.acknowledged_blobs[digest]
            for n in range(INJECTIONS + 2):
                blob = os.urandom(1000 + n)
                junk = f"{world.dev}/junk"
                pushed = http.post(
                    f"/v2/{junk}/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob
                )
                assert pushed.status_code == 201, pushed.text
                assert http.delete(f"/v2/{junk}/blobs/{digest_of(blob)}").status_code == 202
    finally:
        server.stop()
    for _injection in range(INJECTIONS):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
        env |= {
            "SEMREG_TESTING__CRASH_POINT": "gc.deleting",
            "SEMREG_TESTING__CRASH_AFTER": "1",
        }
        if world.database_url:
            env["SEMREG_DATABASE_URL"] = world.database_url
        result = subprocess.run(
            [*semreg_command(False), "gc", "--data", str(world.data_dir), "--grace-minutes", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == -9, (result.returncode, result.stderr[-2000:])
        check_everything(world)
