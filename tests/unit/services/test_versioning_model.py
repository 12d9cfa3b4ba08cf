"""Virtual tags through the real write path, against a model, on SQLite and PostgreSQL.

A hypothesis state machine pushes, deletes (by tag and by digest) and re-pushes random releases
through ``Services`` on a real database; after every step each virtual tag, ``tags/list`` and the
releases listing must match the naive reference computation of ``test_tags``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.errors import ManifestUnknown, NameUnknown, ReleaseImmutable, TagInvalid
from semreg.domain.names import RepoPath, Tag
from semreg.domain.semver import Version, format_version, parse_version
from semreg.domain.tags import TagPolicy
from semreg.metadata.engine import Database, create_engine
from semreg.metadata.migrate import upgrade
from semreg.services.blobs import BlobService
from semreg.services.feeds import FeedService
from semreg.services.manifests import ManifestService
from semreg.services.releases import ReleaseService
from semreg.storage.memory import MemoryBlobStore
from tests.factories import Image, canonical, make_image
from tests.server import PG_ADMIN_URL, PostgresDatabase
from tests.unit.domain.test_semver import spec_sorted
from tests.unit.domain.test_tags import reference_virtual_tags

T = TypeVar("T")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

releases = st.builds(
    Version,
    st.integers(0, 2) | st.just(2**64),
    st.integers(0, 2),
    st.integers(0, 2),
    st.sampled_from([(), (), (), ("alpha",), ("beta", "2"), ("beta", "11"), ("rc", "1")]),
).map(format_version)


BASE_IMAGE = make_image(1, seed="versioning-model", layer_size=64)


def _variant(seed: str) -> Image:
    """The base image with its own manifest digest: same blobs, a version annotation."""
    manifest = json.loads(BASE_IMAGE.manifest)
    manifest["annotations"] = {"org.opencontainers.image.version": seed}
    return Image(canonical(manifest), BASE_IMAGE.media_type, dict(BASE_IMAGE.blobs))


def image_for(version: str) -> Image:
    """The one image a version is ever pushed with (a deleted release stays reserved).

    Every ``x.y.2`` of a major shares one image, so some releases share a manifest: deleting it
    by digest retires all of them, and a virtual tag may sit on a manifest with several releases.
    """
    parsed = parse_version(version)
    return _variant(f"shared-{parsed.major}" if parsed.patch == 2 else version)


def other_image_for(version: str) -> Image:
    return _variant(f"other-{version}")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """A migrated database for the module; each hypothesis example uses its own feed."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('model') / 'semreg.db'}"
        asyncio.run(_migrate(url))
        yield url
        return
    database = PostgresDatabase()
    try:
        asyncio.run(_migrate(database.url))
        yield database.url
    finally:
        database.drop()


class Services:
    """The services this test drives (built like ``semreg.services.container.Services``) and
    one repository of a fresh versioned feed to drive them on."""

    def __init__(self, db: Database) -> None:
        store = MemoryBlobStore()
        self.feeds = FeedService(db)
        self.blobs = BlobService(db, store)
        self.manifests = ManifestService(db, store, MAX_MANIFEST_BYTES)
        self.releases = ReleaseService(db)
        self.path = RepoPath(f"model-{uuid.uuid4().hex[:12]}", "team/app")
        self.uploaded: set[str] = set()  # blobs stay in the repository when a manifest goes

    async def create_feed(self) -> None:
        await self.feeds.create(self.path.feed, "docker", policy=TagPolicy(True))

    async def push(self, image: Image, tag: str) -> Digest:
        for digest, data in image.all_blobs().items():
            if digest not in self.uploaded:
                await self.blobs.upload_whole(self.path, parse_digest(digest), _chunks(data))
                self.uploaded.add(digest)
        result = await self.manifests.put(self.path, Tag(tag), image.media_type, image.manifest)
        return result.digest

    async def resolve(self, tag: str) -> Digest | None:
        try:
            return (await self.manifests.find(self.path, Tag(tag))).digest
        except ManifestUnknown:
            return None

    async def tags(self) -> list[str]:
        return (await self.manifests.tags(self.path, None, None)).items


class VersionedRepository(RuleBasedStateMachine):
    """One repository of a versioned feed, driven through the services on a private event loop."""

    database_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database_url, pool_size=2)
        self.services = Services(Database(self.engine))
        self.path = self.services.path
        try:
            self.run(self.services.create_feed())
        except BaseException:
            self.teardown()
            raise
        self.live: dict[str, Digest] = {}  # live release -> digest
        self.known: dict[str, Digest] = {}  # every release ever pushed (live or reserved)
        self.repository_exists = False

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()

    def expected_virtual_tags(self) -> dict[str, Digest]:
        return {
            name: self.live[version]
            for name, version in reference_virtual_tags(set(self.live)).items()
        }

    # --- steps -----------------------------------------------------------------------------

    @rule(version=releases)
    def push(self, version: str) -> None:
        image = image_for(version)
        digest = self.run(self.services.push(image, version))
        assert str(digest) == image.digest
        self.live[version] = digest
        self.known[version] = digest
        self.repository_exists = True

    @precondition(lambda self: self.known)
    @rule(data=st.data())
    def push_other_content(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.known)), label="version")
        with pytest.raises(ReleaseImmutable) as caught:
            self.run(self.services.push(other_image_for(version), version))
        assert str(self.known[version]) in caught.value.message

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete_tag(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.live)), label="version")
        self.run(self.services.manifests.delete(self.path, Tag(version)))
        del self.live[version]

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete_manifest(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.live)), label="version")
        digest = self.live[version]
        self.run(self.services.manifests.delete(self.path, digest))
        self.live = {v: d for v, d in self.live.items() if d != digest}

    @rule(version=releases)
    def delete_missing(self, version: str) -> None:
        if version in self.live:
            return
        expected = ManifestUnknown if self.repository_exists else NameUnknown
        with pytest.raises(expected):
            self.run(self.services.manifests.delete(self.path, Tag(version)))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def write_or_delete_a_virtual_tag(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.expected_virtual_tags())), label="name")
        with pytest.raises(TagInvalid) as caught:
            self.run(self.services.manifests.delete(self.path, Tag(name)))
        assert caught.value.detail["reason"] == "virtual"
        version = data.draw(st.sampled_from(sorted(self.live)), label="image of")
        with pytest.raises(TagInvalid) as caught:
            self.run(self.services.push(image_for(version), name))
        assert caught.value.detail["reason"] == "virtual"
        assert not isinstance(caught.value, ReleaseImmutable)

    # --- the check after every step ----------------------------------------------------------

    async def _observe(
        self, names: list[str]
    ) -> tuple[list[str], dict[str, Digest | None], list[tuple[str, Digest, tuple[str, ...]]]]:
        listed = await self.services.tags()
        resolved = {name: await self.services.resolve(name) for name in names}
        records = await self.services.releases.list(self.path)
        return listed, resolved, [(r.tag, r.digest, r.virtual_tags) for r in records]

    @invariant()
    def virtual_tags_match_the_reference(self) -> None:
        if not self.repository_exists:
            with pytest.raises(NameUnknown):
                self.run(self.services.tags())
            return
        expected = self.expected_virtual_tags()
        listed, resolved, records = self.run(self._observe(sorted(expected)))
        # tags/list has exactly the live releases and the virtual tags; each of those resolves.
        assert listed == sorted(set(self.live) | set(expected))
        assert resolved == expected
        assert [tag for tag, _, _ in records] == list(reversed(spec_sorted(list(self.live))))
        for tag, digest, virtual in records:
            assert digest == self.live[tag]
            assert virtual == tuple(sorted(n for n, d in expected.items() if d == digest))


@pytest.mark.timeout(600)
def test_virtual_tags_follow_random_pushes_and_deletes(database_url: str) -> None:
    url = database_url

    class OnThisDatabase(VersionedRepository):
        database_url = url

    run_state_machine_as_test(
        OnThisDatabase,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # Each shrink step replays a run on the database: a failure would take minutes to
            # shrink. The (at most 15-step) failing run is printed as it is; the scenarios below
            # pin down the cases it has found.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )


# --- scenarios the state machine found -------------------------------------------------------


def run_scenario(url: str, scenario: Callable[[Services], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = create_engine(url, pool_size=2)
        try:
            services = Services(Database(engine))
            await services.create_feed()
            await scenario(services)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_deleting_a_manifest_moves_its_virtual_tags_to_the_next_release(database_url: str) -> None:
    async def scenario(services: Services) -> None:
        old = await services.push(image_for("1.0.0"), "1.0.0")
        new = await services.push(image_for("1.1.0"), "1.1.0")
        assert await services.resolve("latest") == new
        await services.manifests.delete(services.path, new)
        assert await services.tags() == ["1", "1.0", "1.0.0", "latest"]
        assert await services.resolve("latest") == old
        assert await services.resolve("1") == old
        assert await services.resolve("1.1") is None

    run_scenario(database_url, scenario)


def test_a_release_deleted_by_digest_stays_reserved(database_url: str) -> None:
    async def scenario(services: Services) -> None:
        digest = await services.push(image_for("2.0.0"), "2.0.0")
        await services.manifests.delete(services.path, digest)
        with pytest.raises(ReleaseImmutable) as caught:
            await services.push(other_image_for("2.0.0"), "2.0.0")
        assert str(digest) in caught.value.message
        assert (
            await services.push(image_for("2.0.0"), "2.0.0") == digest
        )  # the same bytes restore it
        assert await services.resolve("latest") == digest

    run_scenario(database_url, scenario)
