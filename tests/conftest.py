"""Shared fixtures: a real server per database backend, clients and throw-away feeds."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import settings

from tests.server import PG_ADMIN_URL, PostgresDatabase, ServerProcess

BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])


def pytest_report_header() -> str:
    return f"semreg backends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_factory(backend: str) -> Iterator[object]:
    """Makes a fresh database URL for the backend ('' = SQLite in the data folder)."""
    created: list[PostgresDatabase] = []

    def make() -> str:
        if backend == "sqlite":
            return ""
        database = PostgresDatabase()
        created.append(database)
        return database.url

    yield make
    for database in created:
        database.drop()


@pytest.fixture(scope="session")
def registry(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    """One server per backend for the whole run; tests isolate themselves with their own feed."""
    server = ServerProcess(tmp_path_factory.mktemp("registry"), database_factory()).start()
    yield server
    server.stop()


@pytest.fixture
def client(registry: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client signed in with the full-control key (Basic on /v2 and /api)."""
    with httpx.Client(base_url=registry.url, timeout=60, auth=registry.auth) as c:
        yield c


@pytest.fixture
def anonymous_client(registry: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def feed(client: httpx.Client) -> str:
    """A new feed for this test alone."""
    name = unique("feed")
    response = client.post(
        "/api/management/feeds/create", json={"name": name, "feedType": "docker"}
    )
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def repo(feed: str) -> str:
    """A repository name inside this test's feed (created on first push)."""
    return f"{feed}/team/app"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keep server-heavy tests after the fast unit tests so failures in the core show first.
    items.sort(key=lambda item: "e2e" in item.nodeid)


# "ci" (the default, what `make test` runs): the same inputs every run, so a red build is real.
# "random" (HYPOTHESIS_PROFILE=random): new inputs every run; a failure is saved in .hypothesis/
# and replayed first by the next run on that machine, and printed with @reproduce_failure. The
# corpus kept in the repository is the explicit @example cases: every input a fuzzer found
# becomes one (see docs/testing.md).
settings.register_profile("ci", deadline=None, max_examples=200, derandomize=True)
settings.register_profile(
    "random", deadline=None, max_examples=200, derandomize=False, print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
