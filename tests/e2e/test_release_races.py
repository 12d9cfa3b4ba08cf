"""Races on the *same* release of a versioned feed: exactly one writer wins, the others are refused.

Pushes of one version with different content, a push against a promotion into that version, a
push against ``/api/containers/tags/create``: each round starts its contenders together (a
barrier, after every connection is open) on a ``semreg serve --workers 2``, so the writers are
in different processes as well as in different transactions. The documented refusal is ``409
TAG_INVALID`` naming the winner's digest (docs/versioning.md, rule 3); afterwards the release,
its tag and the virtual tags ``latest``, ``N`` and ``N.M`` all point at the winner (each round
publishes the highest version so far). The same-version races are what catch a tag decision
taken outside the repository lock; pushes of *different* versions cannot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import unique
from tests.factories import Image, make_image
from tests.registry_client import error_code, push_image, push_manifest
from tests.server import ServerProcess

ROUNDS = 20
Contender = Callable[[httpx.Client], httpx.Response]


@pytest.fixture(scope="module")
def workers(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("races"), database_factory(), args=("--workers", "2")
    ).start()
    yield server
    server.stop()


@pytest.fixture
def admin(workers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=workers.url, auth=workers.auth, timeout=60) as client:
        yield client


def versioned_feed(admin: httpx.Client) -> str:
    name = unique("race")
    body = {"name": name, "containerVersioning": True}
    response = admin.post("/api/management/feeds/create", json=body)
    assert response.status_code == 201, response.text
    return name


def images(admin: httpx.Client, name: str, count: int) -> list[Image]:
    """``count`` different images, pushed by digest (no tag yet) so a round only tags."""
    made = [make_image(1, seed=unique("race")) for _ in range(count)]
    for image in made:
        push_image(admin, name, image)
    return made


def race(
    server: ServerProcess, contenders: list[Contender], delays: list[float] | None = None
) -> list[httpx.Response]:
    """Start ``contenders`` together, each ``delays[i]`` seconds after the common start."""
    barrier = threading.Barrier(len(contenders))
    offsets = delays or [0.0] * len(contenders)

    def run(contender: Contender, delay: float) -> httpx.Response:
        # A client of its own: its connection goes to either worker process.
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as http:
            assert http.get("/v2/").status_code == 200  # connected before the start
            barrier.wait(timeout=30)
            time.sleep(delay)
            return contender(http)

    with ThreadPoolExecutor(len(contenders)) as pool:
        return list(pool.map(run, contenders, offsets))


def stagger(round_: int, count: int) -> list[float]:
    """Delays for ``count`` pushes racing a slower writer: 0 to 16 ms, shifting every round, so
    the pushes' transactions overlap the other writer's decision at different points."""
    return [((round_ + i) % 5) * 0.004 for i in range(count)]


def put(name: str, version: str, image: Image) -> Contender:
    return lambda http: push_manifest(http, name, version, image)


def one_winner(responses: list[httpx.Response], digests: list[str]) -> str:
    """The digest of the one contender that won; every other one got the documented refusal."""
    outcome = [(r.status_code, r.text[:200]) for r in responses]
    won = [i for i, r in enumerate(responses) if r.status_code in (200, 201)]
    assert len(won) == 1, outcome
    winner = digests[won[0]]
    for i, response in enumerate(responses):
        if i in won:
            continue
        assert response.status_code == 409, outcome
        assert error_code(response) == "TAG_INVALID", outcome
        (entry,) = response.json()["errors"]
        assert "releases are immutable" in entry["message"], entry
        assert entry["detail"]["digest"] == winner, (entry, winner)
    return winner


def assert_consistent(admin: httpx.Client, name: str, version: str, winner: str) -> None:
    """The release, its tag and every virtual tag the version selects point at the winner."""
    major, minor, _patch = version.split(".")
    for tag in (version, "latest", major, f"{major}.{minor}"):
        found = admin.head(f"/v2/{name}/manifests/{tag}")
        assert found.status_code == 200, (tag, found.status_code)
        assert found.headers["Docker-Content-Digest"] == winner, tag
    feed, repo = name.split("/", 1)
    releases = admin.get("/api/containers/releases", params={"feed": feed, "repo": repo})
    assert releases.status_code == 200, releases.text
    listed = {r["version"]: r["digest"] for r in releases.json()}
    assert listed[version] == winner


def test_pushes_of_one_release_with_different_content(workers, admin):
    name = f"{versioned_feed(admin)}/app"
    candidates = images(admin, name, 4)
    digests = [image.digest for image in candidates]
    for round_ in range(1, ROUNDS + 1):
        version = f"1.{round_}.0"
        responses = race(workers, [put(name, version, image) for image in candidates])
        assert_consistent(admin, name, version, one_winner(responses, digests))


def test_push_against_promotion_into_the_same_release(workers, admin):
    source, target = versioned_feed(admin), versioned_feed(admin)
    name = f"{target}/app"
    pushed = images(admin, name, 2)
    promoted = make_image(1, seed=unique("promoted"))
    push_image(admin, f"{source}/app", promoted)
    for round_ in range(1, ROUNDS + 1):
        version = f"1.{round_}.0"
        push_manifest(admin, f"{source}/app", version, promoted)
        body = {"packageName": "app", "version": version, "fromFeed": source, "toFeed": target}

        def promote(http: httpx.Client, body: dict[str, str] = body) -> httpx.Response:
            return http.post("/api/promotions/promote", json=body)

        contenders = [put(name, version, image) for image in pushed] + [promote]
        responses = race(workers, contenders, [*stagger(round_, len(pushed)), 0.0])
        digests = [image.digest for image in pushed] + [promoted.digest]
        winner = one_winner(responses, digests)
        assert_consistent(admin, name, version, winner)
        history = admin.get("/api/promotions/list", params={"feed": target, "version": version})
        assert len(history.json()) == (1 if winner == promoted.digest else 0), history.text


def test_push_against_tags_create_of_the_same_release(workers, admin):
    feed = versioned_feed(admin)
    name = f"{feed}/app"
    pushed, tagged = images(admin, name, 2), images(admin, name, 1)[0]
    for round_ in range(1, ROUNDS + 1):
        version = f"1.{round_}.0"
        params = {"feed": feed, "repo": "app", "target": tagged.digest, "name": version}

        def create(http: httpx.Client, params: dict[str, str] = params) -> httpx.Response:
            return http.post("/api/containers/tags/create", params=params)

        contenders = [put(name, version, image) for image in pushed] + [create]
        responses = race(workers, contenders, [*stagger(round_, len(pushed)), 0.0])
        digests = [image.digest for image in pushed] + [tagged.digest]
        assert_consistent(admin, name, version, one_winner(responses, digests))
