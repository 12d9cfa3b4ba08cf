"""Limits that keep one client from tying up the server, and secrets that never come back.

- /api bodies: authenticated before a byte is read, anonymous callers may not send one, and
  over ``server.max_api_body_bytes`` they get 413, announced or not.
- Headers must arrive within ``server.header_timeout_seconds`` and ``server.max_header_bytes``;
  a body that stops arriving for ``server.body_idle_seconds`` gets 408 (an upload then resumes).
- Connections beyond ``server.max_connections`` get 503 at once.
- Password guesses are counted before they are checked, per client address as the socket
  says (X-Forwarded-For is not believed by default).
- A secret typed in the wrong field is never echoed or stored.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.auth_helpers import create_feed, create_user, feed_key, request_token
from tests.e2e.test_uploads import (
    RawRequest,
    assert_created,
    assert_session,
    content,
    patch,
    start_upload,
)
from tests.factories import digest_of
from tests.registry_client import assert_error, error_code
from tests.server import ServerProcess


def raw_head(server: ServerProcess, lines: list[str], timeout: float = 10) -> str:
    """Send a request head (no body) and return the status line of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout) as sock:
        sock.sendall(("\r\n".join([*lines, f"Host: {server.host}"]) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            received = sock.recv(4096)
            if not received:
                break
            answer += received
    return answer.split(b"\r\n", 1)[0].decode()


def basic(key: str) -> str:
    import base64

    return "Authorization: Basic " + base64.b64encode(f"api:{key}".encode()).decode()


# --- /api bodies ----------------------------------------------------------------------------


def test_an_api_body_is_not_read_before_the_caller_is_known(registry):
    # A body announced and never sent: each answer comes at once, so nothing waited for it.
    def head(length: int, *credentials: str) -> list[str]:
        return [
            "POST /api/promotions/promote HTTP/1.1",
            "Content-Type: application/json",
            f"Content-Length: {length}",
            *credentials,
        ]

    started = time.monotonic()
    assert raw_head(registry, head(1000)).startswith("HTTP/1.1 401")
    assert raw_head(registry, head(1000, basic("semreg_not-a-key"))).startswith("HTTP/1.1 401")
    for credentials in ((), (basic("semreg_not-a-key"),), (basic(registry.admin_key),)):
        assert raw_head(registry, head(300_000_000, *credentials)).startswith("HTTP/1.1 413")
    assert time.monotonic() - started < 5


def test_an_api_body_over_the_limit_is_413_announced_or_not(client):
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    announced = client.post(
        "/api/management/feeds/create", content=huge, headers={"Content-Type": "application/json"}
    )
    assert announced.status_code == 413, announced.text
    assert error_code(announced) == "REQUEST_INVALID"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    streamed = client.post(
        "/api/management/feeds/create",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, streamed.text
    assert error_code(streamed) == "REQUEST_INVALID"
    # Nothing was created, and small bodies still work.
    feed = create_feed(client)
    assert client.get(f"/api/management/feeds/get/{feed}").status_code == 200


def test_anonymous_callers_send_no_api_bodies(anonymous_client):
    response = anonymous_client.post(
        "/api/management/feeds/create", json={"name": "nope", "feedType": "docker"}
    )
    assert response.status_code == 401, response.text
    assert error_code(response) == "UNAUTHORIZED"
    assert "sign in" in response.json()["errors"][0]["message"]


# --- slow clients ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(database_factory, tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("strict-limits"),
        database_factory(),
        SEMREG_SERVER__HEADER_TIMEOUT_SECONDS="1",
        SEMREG_SERVER__BODY_IDLE_SECONDS="1",
        SEMREG_SERVER__MAX_HEADER_BYTES="8192",
        SEMREG_SERVER__MAX_CONNECTIONS="30",
        SEMREG_AUTH__FAILURE_LIMIT="5",
        SEMREG_SERVER__MAX_UPLOADS_PER_PRINCIPAL="3",
    ).start()
    yield server
    server.stop()


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from ``sock``."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, body = answer.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return answer


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_headers_that_trickle_in_are_cut_off(strict):
    with socket.create_connection(("127.0.0.1", strict.port), 10) as silent:
        assert closed_by_server(silent, 5)
    with socket.create_connection(("127.0.0.1", strict.port), 10) as slow:
        slow.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(slow, 5)
    # A keep-alive connection: the second request's headers trickle in, and are cut off too.
    with socket.create_connection(("127.0.0.1", strict.port), 10) as kept:
        kept.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept).startswith(b"HTTP/1.1 401")
        kept.sendall(b"GET /v2/ HTTP/1.1\r\n")
        assert closed_by_server(kept, 5)


def raw_answer(server: ServerProcess, head: bytes) -> tuple[str, dict[str, object]]:
    """The status line and JSON body of the answer to a hand-written request head."""
    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    return status.decode(), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_oversized_headers_are_refused(strict):
    status = raw_head(strict, ["GET /v2/ HTTP/1.1", "X-Padding: " + "a" * 20_000])
    assert status.startswith("HTTP/1.1 431"), status
    padded = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20_000 + b"\r\n\r\n"
    status, body = raw_answer(strict, padded)
    assert status.startswith("HTTP/1.1 431")
    assert body["errors"][0]["code"] == "UNSUPPORTED"
    with httpx.Client(base_url=strict.url, timeout=10) as http:
        assert_error(http.get("/v2/"), 401, "UNAUTHORIZED")


def test_a_request_the_parser_refuses_gets_the_oci_envelope(strict):
    status, body = raw_answer(strict, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
    assert status.startswith("HTTP/1.1 400"), status
    assert body["errors"][0]["code"] == "UNSUPPORTED"
    assert "invalid HTTP request" in body["errors"][0]["message"]


def test_a_stalled_upload_gets_408_and_resumes(strict):
    with httpx.Client(base_url=strict.url, auth=strict.auth, timeout=30) as http:
        repo = f"{create_feed(http)}/stalled"
        location = start_upload(http, repo)
        data = content(200_000, "stalled")
        with RawRequest(http) as raw:
            raw.open("PATCH", location, len(data), f"0-{len(data) - 1}")
            raw.send(data[:50_000])  # and then nothing
            status_line, headers = raw.read_head()
        assert status_line.startswith("HTTP/1.1 408"), status_line
        assert headers.get("connection") == "close"
        assert_session(http.get(location), location, 0, status=204)
        assert_session(patch(http, location, data, start=0), location, len(data))
        response = http.put(location, params={"digest": digest_of(data)})
        assert_created(response, repo, digest_of(data))


def test_connections_beyond_the_limit_get_503(strict):
    stalled = []
    try:
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", strict.port), 10)
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            stalled.append(sock)
        time.sleep(0.2)
        with httpx.Client(base_url=strict.url, timeout=10) as http:
            busy = http.get("/v2/")
            assert busy.status_code == 503, busy.text
            assert error_code(busy) == "TOOMANYREQUESTS"
            assert busy.headers["Retry-After"] == "1"
    finally:
        for sock in stalled:
            sock.close()
    deadline = time.monotonic() + 5
    with httpx.Client(base_url=strict.url, timeout=10) as http:
        while http.get("/v2/").status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_uploads_in_progress_are_limited_per_principal(strict):
    with httpx.Client(base_url=strict.url, auth=strict.auth, timeout=30) as admin:
        feed = create_feed(admin)
        repo = f"{feed}/many"
        locations = [start_upload(admin, repo) for _ in range(3)]
        refused = admin.post(f"/v2/{repo}/blobs/uploads/")
        assert refused.status_code == 429, refused.text
        assert error_code(refused) == "TOOMANYREQUESTS"
        assert "limit" in refused.json()["errors"][0]["message"]
        # Another key has uploads of its own; a monolithic push holds no session at all.
        other = feed_key(admin, feed, "view", "add")
        with httpx.Client(base_url=strict.url, auth=("api", other), timeout=30) as http:
            start_upload(http, repo)
        blob = content(1000, "monolithic")
        pushed = admin.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob
        )
        assert pushed.status_code == 201, pushed.text
        # A finished or cancelled upload frees its place.
        assert admin.delete(locations[0]).status_code == 204
        start_upload(admin, repo)


# --- password guessing ----------------------------------------------------------------------


def test_parallel_guesses_are_all_counted(strict):
    with httpx.Client(base_url=strict.url, auth=strict.auth, timeout=30) as admin:
        user, password = create_user(admin)

    def guess(n: int) -> int:
        with httpx.Client(base_url=strict.url, timeout=30) as http:
            return http.get("/v2/", auth=(user, f"wrong-{n}")).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(guess, range(40)))
    # Each guess was counted before it was checked: no more than the limit were checked (the
    # others were refused, or found the 30 connections of this server taken: 503).
    assert statuses.count(401) <= 5, statuses
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses.count(429) >= 10, statuses
    with httpx.Client(base_url=strict.url, timeout=30) as http:
        assert_error(http.get("/v2/", auth=(user, password)), 429, "TOOMANYREQUESTS")


def test_a_forwarded_address_does_not_reset_the_count(strict):
    with httpx.Client(base_url=strict.url, auth=strict.auth, timeout=30) as admin:
        user, password = create_user(admin)
    with httpx.Client(base_url=strict.url, timeout=30) as http:
        for n in range(6):
            forwarded = {"X-Forwarded-For": f"203.0.113.{n}"}
            http.get("/v2/", auth=(user, f"wrong-{n}"), headers=forwarded)
        response = http.get(
            "/v2/", auth=(user, password), headers={"X-Forwarded-For": "198.51.100.7"}
        )
        assert response.status_code == 429, response.text
        assert error_code(response) == "TOOMANYREQUESTS"


def test_a_secret_in_the_user_name_field_is_never_echoed_or_stored(strict):
    key_like = "semreg_this-key-is-secret-0123456789"
    password_like = "correct-horse-battery-staple-typed-as-the-user"
    with httpx.Client(base_url=strict.url, timeout=30) as http:
        for credentials in ((key_like, "x"), (password_like, "x")):
            for response in (
                http.get("/v2/", auth=credentials),
                request_token(http, auth=credentials),
                http.get("/api/management/feeds/list", auth=credentials),
            ):
                assert response.status_code == 401, response.text
                assert error_code(response) == "UNAUTHORIZED"
                assert credentials[0] not in response.text
                assert credentials[0] not in str(response.headers)
    assert key_like not in strict.log()
    assert password_like not in strict.log()
    if not strict.database_url:
        with sqlite3.connect(strict.data_dir / "semreg.db") as db:
            stored = db.execute("SELECT subject FROM auth_failures").fetchall()
        assert stored, "the failures were counted"
        assert all(len(subject) == 64 for (subject,) in stored)


# --- private files --------------------------------------------------------------------------


def test_the_data_folder_and_database_are_private(tmp_path):
    server = ServerProcess(tmp_path / "fresh").start()
    try:
        assert (server.data_dir.stat().st_mode & 0o777) == 0o700
        for name in ("semreg.db", "token-signing.key", "blobs", "uploads"):
            mode = (server.data_dir / name).stat().st_mode
            assert mode & 0o077 == 0, (name, oct(mode))
    finally:
        server.stop()
