"""Schemathesis against /api's OpenAPI document on a real ``semreg serve`` (issue 9).

Every operation of ``/openapi.json`` gets cases of both kinds Schemathesis makes: positive
(valid by the schema, so they reach the services) and negative (schema violations: wrong
types, missing fields, out-of-range values). Every answer must be below 500, carry no
traceback, and every refusal must be one documented OCI error envelope (``tests.oci_errors``);
the server must log no unexpected error.

The server is this module's own: the cases create, change and delete feeds, users and keys as
the full-control key. They never revoke that key (``_spare_the_caller``), so every case is
tried with the rights to reach the code behind the permission checks.

The corpus is kept as explicit cases in ``test_corpus``: every input that found a fault.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import unique
from tests.oci_errors import assert_documented
from tests.server import ServerProcess

CASES_PER_OPERATION = 12
CASES: Counter[str] = Counter()


@dataclass(frozen=True)
class Api:
    server: ServerProcess
    session: requests.Session
    operations: list[Any]  # schemathesis' APIOperation
    admin_key_id: int


@pytest.fixture(scope="module")
def api(database_factory, tmp_path_factory) -> Iterator[Api]:
    server = ServerProcess(tmp_path_factory.mktemp("api-fuzz"), database_factory()).start()
    started = time.monotonic()
    try:
        with httpx.Client(base_url=server.url, auth=server.auth, timeout=60) as client:
            document = client.get("/openapi.json").json()
            feed = client.post("/api/management/feeds/create", json={"name": unique("api")})
            assert feed.status_code == 201, feed.text
            (admin,) = [k for k in client.get("/api/api-keys/list").json() if "bootstrap" in str(k)]
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        session = requests.Session()
        session.auth = server.auth
        yield Api(server, session, operations, int(admin["id"]))
        session.close()
        elapsed = time.monotonic() - started
        print(f"\n/api fuzz: {sum(CASES.values())} requests in {elapsed:.1f} s")
        for label, count in sorted(CASES.items()):
            print(f"  {count:5d}  {label}")
        CASES.clear()
        log = server.log()
        assert "failed to handle request" not in log, log[-5000:]
        assert "Traceback" not in log, log[-5000:]
    finally:
        server.stop()


def as_httpx(response: Any) -> httpx.Response:
    """Schemathesis' response in the shape ``tests.oci_errors`` checks."""
    request = response.request
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, values in response.headers.items() for v in values],
        content=response.content,
        request=httpx.Request(str(request.method), str(request.url)),
    )


def _spare_the_caller(api: Api, case: Any) -> None:
    if case.operation.path == "/api/api-keys/delete":
        assume(str((case.query or {}).get("id")) != str(api.admin_key_id))


def run(api: Api, mode: GenerationMode) -> None:
    for operation in api.operations:
        run_operation(api, operation, mode)


def run_operation(api: Api, operation: Any, mode: GenerationMode) -> None:
    """Up to ``CASES_PER_OPERATION`` cases of ``mode`` for one operation."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        _spare_the_caller(api, case)
        CASES[f"{label} ({mode.value})"] += 1
        response = case.call(base_url=api.server.url, session=api.session, timeout=60)
        try:
            assert_documented(as_httpx(response))
        except AssertionError as exc:
            exc.add_note("reproduce: " + case.as_curl_command()[:2000])
            raise

    try:
        check()
    except Unsatisfiable:
        # No parameters and no body: nothing to violate, so no negative case exists.
        assert mode is GenerationMode.NEGATIVE
    except Exception as exc:
        exc.add_note(f"operation: {label}, {mode.value} cases")
        raise


def test_positive_cases(api):
    run(api, GenerationMode.POSITIVE)


def test_negative_cases(api):
    run(api, GenerationMode.NEGATIVE)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        # The inputs the fuzzers found (each answered 500 before issue 9).
        ("POST", "/api/api-keys/delete", {"params": {"id": "9" * 19}}),
        ("POST", "/api/api-keys/create",
         {"json": {"type": "system", "systemApis": ["feeds"], "expiration": "2030-01-01T00:00"}}),
        ("POST", "/api/api-keys/create",
         {"json": {"type": "system", "systemApis": ["feeds"], "displayName": "x" * 201}}),
        ("POST", "/api/management/feeds/create", {"json": {"name": "a", "description": "\x00"}}),
        ("GET", "/api/management/feeds/get/%00", {}),
        ("GET", "/api/promotions/list", {"params": {"feed": "\x00"}}),
        ("POST", "/api/users/delete", {"params": {"name": "\x00"}}),
        ("POST", "/api/users/permissions", {"json": {"user": "\x00", "permissions": []}}),
        ("POST", "/api/promotions/promote", {"content": b'{"a": ' + b"9" * 5000 + b"}"}),
        ("POST", "/api/promotions/promote", {"content": b"[" * 100_000 + b"]" * 100_000}),
    ],
)  # fmt: skip
def test_corpus(api, method, path, kwargs):
    with httpx.Client(base_url=api.server.url, auth=api.server.auth, timeout=60) as client:
        assert_documented(client.request(method, path, **kwargs))


@given(st.data())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_json_bodies(api, data):
    """What the schema cannot express: integers beyond 4,300 digits, deep nesting, escapes."""
    paths = [o.path for o in api.operations if o.method.upper() == "POST" and o.body]
    path = data.draw(st.sampled_from(sorted(paths)))
    depth = data.draw(st.sampled_from([1, 50, 1000, 100_000]))
    value = data.draw(
        st.sampled_from([5000, 4300, 1]).map(lambda n: "9" * n)
        | st.sampled_from(['"\\u0000"', '"\\ud800"', "1e999", "-0", "null"])
    )
    key = data.draw(st.sampled_from(["name", "type", "packageName", "user", "description", "x"]))
    body = "[" * depth + "{" + f'"{key}": {value}' + "}" + "]" * depth
    if data.draw(st.booleans()):
        body = "{" + f'"{key}": ' + "[" * depth + value + "]" * depth + "}"
    CASES[f"POST {path} (hostile JSON)"] += 1
    with httpx.Client(base_url=api.server.url, auth=api.server.auth, timeout=60) as client:
        response = client.post(
            path.replace("{name}", "x"),
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
    assert_documented(response)
