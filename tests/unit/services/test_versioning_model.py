"""Container Versioning through the real write path, against a model, on SQLite and PostgreSQL.

A hypothesis state machine drives the repository ``team/app`` of two feeds through the real
services on a real database. It pushes (by tag and by digest), deletes (by tag, through the
registry API and /api, and by digest) and re-pushes random releases and other tags; promotes
images from either feed into the other, optionally to another version; retags with and without
``force``; purges deleted releases (and publishes them again with other content); and switches
Container Versioning off and on. Every outcome, success or refusal with its exact error class,
comes from ``RepositoryModel``: a naive reading of ``docs/versioning.md`` that shares nothing
with the code under test but the reference virtual tags of ``test_tags`` (semver.org
precedence). After every step both feeds' ``tags/list`` and releases listing, the digest each
tag of the feeds the step worked on resolves to, and after each retag the tag history, must
match the model.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from semreg.domain.digest import Digest, parse_digest
from semreg.domain.errors import (
    Conflict,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    ReleaseImmutable,
    TagInvalid,
)
from semreg.domain.feeds import FeedChanges
from semreg.domain.names import Reference, RepoPath, Tag
from semreg.domain.promotion import PromotionRecord
from semreg.domain.semver import Version, format_version, parse_version
from semreg.domain.tags import TagPolicy
from semreg.metadata.engine import Database, create_engine
from semreg.metadata.migrate import upgrade
from semreg.services.blobs import BlobService
from semreg.services.feeds import FeedService
from semreg.services.manifests import ManifestService
from semreg.services.promotion import PromotionRequest, PromotionService
from semreg.services.releases import ReleaseService
from semreg.storage.memory import MemoryBlobStore
from tests.factories import Image, canonical, make_image
from tests.server import PG_ADMIN_URL, PostgresDatabase
from tests.unit.domain.test_semver import spec_sorted
from tests.unit.domain.test_tags import reference_virtual_tags

T = TypeVar("T")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
FEEDS = ("a", "b")
PERMITTED = ("stable",)
# Tags that are not releases: a permitted tag, virtual tag names, and a near-miss of a release.
OTHER_TAGS = ("stable", "latest", "1", "0.2", "v1.0.0")
ACTOR = "model"
MISSING_TAG = "9.9.9"  # a release the machine never pushes

releases = st.builds(
    Version,
    st.integers(0, 2) | st.just(2**64),
    st.integers(0, 2),
    st.integers(0, 2),
    st.sampled_from([(), (), (), ("alpha",), ("beta", "2"), ("beta", "11"), ("rc", "1")]),
).map(format_version)


BASE_IMAGE = make_image(1, seed="versioning-model", layer_size=64)


SIZES: dict[str, int] = {}  # manifest digest -> its length, for every image the test made


def _variant(seed: str) -> Image:
    """The base image with its own manifest digest: same blobs, a version annotation."""
    manifest = json.loads(BASE_IMAGE.manifest)
    manifest["annotations"] = {"org.opencontainers.image.version": seed}
    image = Image(canonical(manifest), BASE_IMAGE.media_type, dict(BASE_IMAGE.blobs))
    SIZES[image.digest] = len(image.manifest)
    return image


def image_for(version: str) -> Image:
    """The image a version is usually pushed with.

    Every ``x.y.2`` of a major shares one image, so some releases share a manifest: deleting it
    by digest retires all of them, and a virtual tag may sit on a manifest with several releases.
    """
    parsed = parse_version(version)
    return _variant(f"shared-{parsed.major}" if parsed.patch == 2 else version)


def other_image_for(version: str) -> Image:
    return _variant(f"other-{version}")


MISSING_DIGEST = other_image_for(MISSING_TAG).digest


# --- the model -------------------------------------------------------------------------------

# semver.org's regular expression for a version, without build metadata (no '+' in a tag).
_IDENTIFIER = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_RELEASE = re.compile(
    rf"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-{_IDENTIFIER}(?:\.{_IDENTIFIER})*)?"
)
_VIRTUAL_NAME = re.compile(r"latest|(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?")


def is_release(tag: str) -> bool:
    return _RELEASE.fullmatch(tag) is not None


@dataclass(frozen=True)
class Refusal:
    """The error a step must raise: its exact class, ``detail["reason"]``, the digest named."""

    error: type[RegistryError]
    reason: str | None = None
    digest: str | None = None


@dataclass
class RepositoryModel:
    """One repository of a feed as docs/versioning.md describes it; digests are strings."""

    versioning: bool = True
    exists: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    """Client tags: releases, permitted tags and whatever was tagged while versioning was off."""
    reserved: dict[str, str] = field(default_factory=dict)
    """Deleted releases -> the digest they keep reserved."""
    manifests: set[str] = field(default_factory=set)
    history: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    """Explicit tag changes: (tag, old digest, new digest, create | move | delete)."""

    def releases(self) -> dict[str, str]:
        if not self.versioning:
            return {}
        return {tag: digest for tag, digest in self.tags.items() if is_release(tag)}

    def virtual(self) -> dict[str, str]:
        live = self.releases()
        return {name: live[version] for name, version in reference_virtual_tags(set(live)).items()}

    def visible(self) -> dict[str, str]:
        """Every tag of ``tags/list`` and the digest it resolves to."""
        return {**self.tags, **self.virtual()}

    def known(self) -> list[str]:
        """Live and reserved releases."""
        return sorted(set(self.releases()) | set(self.reserved))

    def refusal(self, tag: str, digest: str, force: bool = False) -> Refusal | None:
        """What the feed's rules say about pointing ``tag`` at ``digest``."""
        if not self.versioning:
            return None
        if _VIRTUAL_NAME.fullmatch(tag):
            return Refusal(TagInvalid, "virtual")
        if is_release(tag):
            held = self.releases().get(tag, self.reserved.get(tag))
            if held is not None and held != digest and not force:
                return Refusal(ReleaseImmutable, digest=held)
            return None
        if tag in PERMITTED:
            return None
        return Refusal(TagInvalid, "not-a-release")

    def write(self, tag: str, digest: str) -> None:
        self.exists = True
        self.manifests.add(digest)
        self.tags[tag] = digest
        self.reserved.pop(tag, None)
        self._take_over()

    def delete_tag(self, tag: str) -> None:
        digest = self.tags.pop(tag)
        if self.versioning and is_release(tag):
            self.reserved[tag] = digest

    def delete_manifest(self, digest: str) -> None:
        for tag in [t for t, d in self.tags.items() if d == digest]:
            self.delete_tag(tag)
        self.manifests.discard(digest)

    def movable(self) -> list[tuple[str, str]]:
        """(tag, digest): a client tag or a reserved release and an image it is not on."""
        held = {**self.tags, **self.reserved}
        return [(t, d) for t, on in sorted(held.items()) for d in sorted(self.manifests) if d != on]

    def purge(self, version: str) -> bool:
        return self.reserved.pop(version, None) is not None

    def set_versioning(self, on: bool) -> None:
        if on and not self.versioning:
            # Existing release tags become releases; nothing deleted before is reserved.
            self.versioning = True
            self._take_over()
        elif self.versioning and not on:
            # Virtual tags stay where they are as ordinary tags; reservations are dropped.
            self.tags.update(self.virtual())
            self.reserved.clear()
            self.versioning = False

    def _take_over(self) -> None:
        """A client tag named like a virtual tag is taken over once a release selects it."""
        for name in self.virtual():
            self.tags.pop(name, None)


# --- the system under test -------------------------------------------------------------------


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
    """A migrated database for the module; each hypothesis example uses its own feeds."""
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
    the repository ``team/app`` in each of two fresh versioned feeds, "a" and "b"."""

    def __init__(self, db: Database) -> None:
        store = MemoryBlobStore()
        self.feeds = FeedService(db)
        self.blobs = BlobService(db, store)
        self.manifests = ManifestService(db, store, MAX_MANIFEST_BYTES)
        self.releases = ReleaseService(db)
        self.promotions = PromotionService(db)
        prefix = f"model-{uuid.uuid4().hex[:12]}"
        self.paths = {feed: RepoPath(f"{prefix}-{feed}", "team/app") for feed in FEEDS}
        self.path = self.paths["a"]
        # Blobs stay in the repository when a manifest goes.
        self.uploaded: dict[str, set[str]] = {feed: set() for feed in FEEDS}

    async def create_feeds(self) -> None:
        for path in self.paths.values():
            await self.feeds.create(path.feed, "docker", policy=TagPolicy(True, PERMITTED))

    async def push(self, image: Image, tag: str | None, feed: str = "a") -> Digest:
        """Push an image by tag, or by digest alone (``tag`` None)."""
        path = self.paths[feed]
        for digest, data in image.all_blobs().items():
            if digest not in self.uploaded[feed]:
                await self.blobs.upload_whole(path, parse_digest(digest), _chunks(data))
                self.uploaded[feed].add(digest)
        reference = parse_digest(image.digest) if tag is None else Tag(tag)
        result = await self.manifests.put(path, reference, image.media_type, image.manifest)
        return result.digest

    async def resolve(self, tag: str, feed: str = "a") -> Digest | None:
        try:
            return (await self.manifests.find(self.paths[feed], Tag(tag))).digest
        except ManifestUnknown:
            return None

    async def tags(self, feed: str = "a") -> list[str]:
        return (await self.manifests.tags(self.paths[feed], None, None)).items

    async def promote(
        self, source: str, version: str, target: str, to_version: str
    ) -> PromotionRecord:
        request = PromotionRequest(
            self.paths[source], Tag(version), self.paths[target].feed, Tag(to_version)
        )
        return await self.promotions.promote(request, ACTOR)

    async def create_tag(
        self, feed: str, target: Reference, name: str, force: bool
    ) -> tuple[str, Digest]:
        return await self.promotions.create_tag(self.paths[feed], target, Tag(name), force, ACTOR)

    async def set_versioning(self, feed: str, on: bool) -> TagPolicy:
        changes = FeedChanges(container_versioning=on)
        return (await self.feeds.update(self.paths[feed].feed, changes)).policy


def _other(feed: str) -> str:
    return FEEDS[1 - FEEDS.index(feed)]


class VersionedRepository(RuleBasedStateMachine):
    """Two feeds' repositories, driven through the services on a private event loop."""

    database_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database_url, pool_size=2)
        self.services = Services(Database(self.engine))
        try:
            self.run(self.services.create_feeds())
        except BaseException:
            self.teardown()
            raise
        self.model = {feed: RepositoryModel() for feed in FEEDS}
        self.touched: set[str] = set()  # feeds a step worked on: the invariant resolves their tags

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()

    def attempt(self, refusal: Refusal | None, coroutine: Coroutine[Any, Any, T]) -> T | None:
        """Run a step; with ``refusal`` it must raise exactly that error, else succeed."""
        if refusal is None:
            return self.run(coroutine)
        with pytest.raises(RegistryError) as caught:
            self.run(coroutine)
        error = caught.value
        assert type(error) is refusal.error, f"{type(error).__name__}: {error.message}"
        if refusal.reason is not None:
            assert error.detail.get("reason") == refusal.reason, error.message
        if refusal.digest is not None:
            assert refusal.digest in error.message
        return None

    def _push(self, feed: str, image: Image, tag: str) -> None:
        model = self.touch(feed)
        refusal = model.refusal(tag, image.digest)
        model.exists = True  # the blob uploads create the repository, even if the tag is refused
        digest = self.attempt(refusal, self.services.push(image, tag, feed))
        if refusal is None:
            assert str(digest) == image.digest
            model.write(tag, image.digest)

    def check_tag_history(self, feed: str) -> None:
        """Every retag and /api tag deletion is in the tag history, newest first."""
        changes = self.run(self.services.promotions.tag_history(self.services.paths[feed]))
        recorded = [
            (
                c.tag,
                c.old_digest and str(c.old_digest),
                c.new_digest and str(c.new_digest),
                c.action,
            )
            for c in changes
        ]
        assert recorded == list(reversed(self.model[feed].history))
        assert {c.actor for c in changes} <= {ACTOR}

    def touch(self, feed: str) -> RepositoryModel:
        self.touched.add(feed)
        return self.model[feed]

    def _feeds_with(self, what: Callable[[RepositoryModel], object]) -> list[str]:
        return [feed for feed in FEEDS if what(self.model[feed])]

    # --- pushes and deletes ------------------------------------------------------------------

    @initialize(
        versions=st.lists(releases, min_size=1, max_size=4),
        b_versions=st.lists(releases, max_size=2),
    )
    def first_pushes(self, versions: list[str], b_versions: list[str]) -> None:
        """Feed "a" starts with a few releases; feed "b" with none (and no repository) or some."""
        for version in versions:
            self._push("a", image_for(version), version)
        for version in b_versions:
            self._push("b", image_for(version), version)

    @rule(feed=st.sampled_from(FEEDS), version=releases)
    def push(self, feed: str, version: str) -> None:
        self._push(feed, image_for(version), version)

    @rule(feed=st.sampled_from(FEEDS), data=st.data())
    def push_other(self, feed: str, data: st.DataObject) -> None:
        """Another image for a known release, or a tag that is not a release."""
        model = self.touch(feed)
        names = [*model.known(), *OTHER_TAGS, *sorted(model.virtual())]
        tag = data.draw(st.sampled_from(names), label="tag")
        if is_release(tag):
            image = other_image_for(tag)
        else:
            image = image_for(data.draw(releases, label="image of"))
        self._push(feed, image, tag)

    @rule(feed=st.sampled_from(FEEDS), version=releases)
    def push_by_digest(self, feed: str, version: str) -> None:
        """A push by digest alone is always allowed, and adds an untagged image."""
        image = other_image_for(version)
        model = self.touch(feed)
        model.exists = True
        digest = self.attempt(None, self.services.push(image, None, feed))
        assert str(digest) == image.digest
        model.manifests.add(image.digest)

    @rule(feed=st.sampled_from(FEEDS), data=st.data(), api=st.booleans())
    def delete_tag(self, feed: str, data: st.DataObject, api: bool) -> None:
        """Delete a tag with the registry API's DELETE, or with /api's tags/delete."""
        model = self.touch(feed)
        visible = model.visible()
        names = [*sorted(visible), *sorted(model.reserved), MISSING_TAG]
        name = data.draw(st.sampled_from(names), label="tag")
        if not model.exists:
            refusal: Refusal | None = Refusal(NameUnknown)
        elif name not in visible:
            refusal = Refusal(ManifestUnknown)
        elif name in model.virtual():
            refusal = Refusal(TagInvalid, "virtual")
        else:
            refusal = None
        path = self.services.paths[feed]
        if api:
            delete = self.services.promotions.delete_tag(path, Tag(name), ACTOR)
        else:
            delete = self.services.manifests.delete(path, Tag(name))
        self.attempt(refusal, delete)
        if refusal is None:
            if api:
                model.history.append((name, visible[name], None, "delete"))
            model.delete_tag(name)
        if api and model.exists:
            self.check_tag_history(feed)

    @rule(feed=st.sampled_from(FEEDS), data=st.data())
    def delete_manifest(self, feed: str, data: st.DataObject) -> None:
        model = self.touch(feed)
        digests = [*sorted(model.manifests), MISSING_DIGEST]
        digest = data.draw(st.sampled_from(digests), label="digest")
        if not model.exists:
            refusal: Refusal | None = Refusal(NameUnknown)
        elif digest not in model.manifests:
            refusal = Refusal(ManifestUnknown)
        else:
            refusal = None
        path = self.services.paths[feed]
        delete = self.services.manifests.delete(path, parse_digest(digest))
        self.attempt(refusal, delete)
        if refusal is None:
            model.delete_manifest(digest)

    # --- promotion, retag, purge, versioning on and off -----------------------------------------

    @rule(source=st.sampled_from(FEEDS), data=st.data())
    def promote(self, source: str, data: st.DataObject) -> None:
        target = _other(source)
        src, dst = self.touch(source), self.touch(target)
        visible = src.visible()
        version = data.draw(st.sampled_from([*sorted(visible), MISSING_TAG]), label="version")
        to_version = data.draw(
            st.one_of(
                st.just(version),
                releases,
                st.sampled_from([*dst.known(), *OTHER_TAGS]),
            ),
            label="to version",
        )
        digest = visible.get(version)
        if not src.exists:
            refusal: Refusal | None = Refusal(NameUnknown)
        elif digest is None:
            refusal = Refusal(ManifestUnknown)
        else:
            refusal = dst.refusal(to_version, digest)
        promoted = self.attempt(refusal, self.services.promote(source, version, target, to_version))
        if refusal is None:
            assert promoted is not None
            paths = self.services.paths
            assert (promoted.from_feed, promoted.to_feed, promoted.repository) == (
                paths[source].feed,
                paths[target].feed,
                paths[source].repo,
            )
            assert (promoted.version, promoted.to_version, str(promoted.digest)) == (
                version,
                to_version,
                digest,
            )
            dst.write(to_version, digest)

    def _create_tag(self, feed: str, target: Reference, name: str, force: bool) -> None:
        model = self.touch(feed)
        visible = model.visible()
        if isinstance(target, Digest):
            digest = str(target) if str(target) in model.manifests else None
        else:
            digest = visible.get(target.name)
        current = visible.get(name)
        if not model.exists:
            refusal: Refusal | None = Refusal(NameUnknown)
        elif digest is None:
            refusal = Refusal(ManifestUnknown)
        else:
            refusal = model.refusal(name, digest, force)
            if refusal is None and current not in (None, digest) and not force:
                refusal = Refusal(Conflict, digest=current)
        result = self.attempt(
            refusal,
            self.services.create_tag(feed, target, name, force),
        )
        if refusal is None:
            assert digest is not None
            expected = "Exists" if current == digest else "Updated" if current else "Created"
            assert result == (expected, parse_digest(digest))
            if expected != "Exists":
                action = "create" if current is None else "move"
                model.history.append((name, current, digest, action))
            model.write(name, digest)
        if model.exists:
            self.check_tag_history(feed)

    @rule(feed=st.sampled_from(FEEDS), data=st.data(), force=st.booleans())
    def create_tag(self, feed: str, data: st.DataObject, force: bool) -> None:
        """Retag: point a new or existing tag at a tag's or digest's image (or a missing one)."""
        model = self.touch(feed)
        visible = model.visible()
        targets = [
            *(Tag(name) for name in sorted(visible)),
            *(parse_digest(digest) for digest in sorted(model.manifests)),
            Tag(MISSING_TAG),
        ]
        target = data.draw(st.sampled_from(targets), label="target")
        names = st.sampled_from([*model.known(), *sorted(visible), *OTHER_TAGS])
        name = data.draw(names | releases, label="name")
        self._create_tag(feed, target, name, force)

    @precondition(lambda self: self._feeds_with(RepositoryModel.movable))
    @rule(data=st.data(), force=st.booleans())
    def move_tag(self, data: st.DataObject, force: bool) -> None:
        """Retag an existing tag (a release, reserved or live, most often) to another image."""
        feed = data.draw(st.sampled_from(self._feeds_with(RepositoryModel.movable)), label="feed")
        model = self.touch(feed)
        name, digest = data.draw(st.sampled_from(model.movable()), label="tag, to")
        self._create_tag(feed, parse_digest(digest), name, force)

    def _purge(self, feed: str, version: str) -> bool:
        model = self.touch(feed)
        if not is_release(version):
            refusal: Refusal | None = Refusal(TagInvalid)
        elif not model.exists:
            refusal = Refusal(NameUnknown)
        elif version not in model.reserved:
            refusal = Refusal(ManifestUnknown)
        else:
            refusal = None
        path = self.services.paths[feed]
        self.attempt(refusal, self.services.releases.purge(path, version))
        if refusal is None:
            assert model.purge(version)
        return refusal is None

    @rule(feed=st.sampled_from(FEEDS), data=st.data())
    def purge(self, feed: str, data: st.DataObject) -> None:
        model = self.touch(feed)
        choices = [*sorted(model.reserved), *sorted(model.releases()), MISSING_TAG, "latest"]
        self._purge(feed, data.draw(st.sampled_from(choices), label="version"))

    @precondition(lambda self: self._feeds_with(lambda model: model.reserved))
    @rule(data=st.data(), reuse=st.booleans())
    def purge_reserved(self, data: st.DataObject, reuse: bool) -> None:
        """Purge a deleted release; then, maybe, publish that version with other content."""
        feed = data.draw(st.sampled_from(self._feeds_with(lambda m: m.reserved)), label="feed")
        version = data.draw(st.sampled_from(sorted(self.model[feed].reserved)), label="version")
        assert self._purge(feed, version)
        if reuse:
            self._push(feed, other_image_for(version), version)

    @rule(feed=st.sampled_from(FEEDS), again=st.booleans())
    def switch_versioning(self, feed: str, again: bool) -> None:
        """Switch Container Versioning off or on; maybe send the same setting once more."""
        model = self.touch(feed)
        on = not model.versioning
        for _ in range(2 if again else 1):
            policy = self.run(self.services.set_versioning(feed, on))
            assert policy == TagPolicy(on, PERMITTED)
        model.set_versioning(on)

    # --- the check after every step ----------------------------------------------------------

    async def _observe(
        self, feed: str, names: list[str]
    ) -> tuple[list[str], dict[str, str | None], list[tuple[str, str, int, tuple[str, ...]]]]:
        listed = await self.services.tags(feed)
        resolved = {}
        for name in names:
            digest = await self.services.resolve(name, feed)
            resolved[name] = None if digest is None else str(digest)
        records = await self.services.releases.list(self.services.paths[feed])
        return listed, resolved, [(r.tag, str(r.digest), r.size, r.virtual_tags) for r in records]

    @invariant()
    def tags_and_releases_match_the_model(self) -> None:
        # Both feeds' listings are read after every step (a step on one feed must not change the
        # other); resolving every tag, the slow part, is left to the feeds the step worked on.
        touched, self.touched = self.touched, set()
        for feed, model in self.model.items():
            if not model.exists:
                with pytest.raises(NameUnknown):
                    self.run(self.services.tags(feed))
                continue
            visible, virtual, live = model.visible(), model.virtual(), model.releases()
            names = sorted(visible) if feed in touched else []
            listed, resolved, records = self.run(self._observe(feed, names))
            # tags/list has exactly the model's tags, and each resolves to the model's digest.
            assert listed == sorted(visible), feed
            assert resolved == {name: visible[name] for name in names}, feed
            # The releases listing: live releases, highest first, with the size and the virtual
            # tags of each one's manifest (an ordinary tag named like a virtual tag is not one).
            assert [tag for tag, *_ in records] == list(reversed(spec_sorted(list(live))))
            for tag, digest, size, on_it in records:
                assert (digest, size) == (live[tag], SIZES[live[tag]]), (feed, tag)
                assert on_it == tuple(sorted(n for n, d in virtual.items() if d == digest))


@pytest.mark.timeout(900)
def test_versioning_follows_random_pushes_promotions_retags_and_switches(database_url: str) -> None:
    url = database_url

    class OnThisDatabase(VersionedRepository):
        database_url = url

    run_state_machine_as_test(
        OnThisDatabase,
        settings=settings(
            max_examples=40,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # Each shrink step replays a run on the database: a failure would take minutes to
            # shrink. The (at most 20-step) failing run is printed as it is; the scenarios below
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
            await services.create_feeds()
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
