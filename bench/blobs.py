"""Blob push and pull throughput for one large blob (1 GiB by default).

Three ways to push, each timed from the first request to the 201 that publishes the blob:

- ``POST ?digest=``: the single-request monolithic upload (distribution-spec "POST then PUT"
  shortcut); registries may answer 202 and ignore the body, then the row says "not supported".
- ``POST + PUT``: open a session, then one PUT carrying the whole body and the digest.
- ``PATCH chunks``: open a session, PATCH fixed-size chunks with Content-Range, PUT ``?digest=``.

Then a GET of the blob, streamed and counted (not hashed, so the client spends its CPU on
receiving) of the blob pushed last, still in the page cache (a hot read). The client streams
from a generator; it never holds the blob in memory. Before each push the page cache is
settled (``resources.settle_page_cache``) so a push does not pay for the previous one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.content import BlobSource, MiB
from bench.resources import CpuMeter, CpuUse, settle_page_cache

OCTET = "application/octet-stream"


@dataclass
class Transfer:
    """One timed transfer of ``size`` bytes (``cpu``: what it cost, set by ``run``)."""

    size: int
    seconds: float
    cpu: CpuUse | None = None

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{what}: expected {status}, got {response.status_code}: {response.text}"
        )


def supports_post_digest(client: httpx.Client, repo: str) -> bool:
    """Whether ``POST /blobs/uploads/?digest=`` with a body publishes the blob (a tiny probe)."""
    data = b"semreg bench probe " + str(time.time_ns()).encode()
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": OCTET},
    )
    if response.status_code != 201:
        return False
    return client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


def push_post_digest(client: httpx.Client, repo: str, source: BlobSource) -> Transfer:
    digest = source.digest
    started = time.perf_counter()
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=source.pieces(),
        headers={"Content-Type": OCTET, "Content-Length": str(source.size)},
    )
    seconds = time.perf_counter() - started
    _expect(response, 201, "monolithic POST ?digest=")
    return Transfer(source.size, seconds)


def _with_digest(location: str, digest: str) -> httpx.URL:
    # Keep the session's own query (the reference registry signs its state in ``_state``).
    return httpx.URL(location).copy_merge_params({"digest": digest})


def _open_session(client: httpx.Client, repo: str) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    _expect(response, 202, "POST /blobs/uploads/")
    return response.headers["location"]


def push_post_put(client: httpx.Client, repo: str, source: BlobSource) -> Transfer:
    digest = source.digest
    started = time.perf_counter()
    location = _open_session(client, repo)
    response = client.put(
        _with_digest(location, digest),
        content=source.pieces(),
        headers={"Content-Type": OCTET, "Content-Length": str(source.size)},
    )
    seconds = time.perf_counter() - started
    _expect(response, 201, "monolithic PUT ?digest=")
    return Transfer(source.size, seconds)


def push_chunked(client: httpx.Client, repo: str, source: BlobSource, chunk: int) -> Transfer:
    digest = source.digest
    started = time.perf_counter()
    location = _open_session(client, repo)
    for start in range(0, source.size, chunk):
        end = min(start + chunk, source.size)
        response = client.patch(
            location,
            content=source.pieces(start, end),
            headers={
                "Content-Type": OCTET,
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            },
        )
        _expect(response, 202, f"PATCH bytes {start}-{end - 1}")
        location = response.headers["location"]
    response = client.put(_with_digest(location, digest), content=b"")
    seconds = time.perf_counter() - started
    _expect(response, 201, "closing PUT ?digest=")
    return Transfer(source.size, seconds)


def pull(client: httpx.Client, repo: str, digest: str, size: int) -> Transfer:
    received = 0
    started = time.perf_counter()
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
        _expect(response, 200, "GET blob")
        for chunk in response.iter_raw():
            received += len(chunk)
    seconds = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"GET blob: received {received} bytes, expected {size}")
    return Transfer(size, seconds)


@dataclass
class BlobFigures:
    post_digest: Transfer | None  # None: the registry does not support it
    post_put: Transfer
    chunked: Transfer
    pull: Transfer


def _metered(pid: int, step: Callable[[], Transfer], drop_caches: bool) -> Transfer:
    settle_page_cache(drop_caches)  # no push pays for the one before it
    with CpuMeter(pid) as meter:
        transfer = step()
    transfer.cpu = meter.use
    return transfer


def run(
    base_url: str,
    pid: int,
    repo: str,
    size: int,
    chunk: int,
    headers: dict[str, str],
    drop_caches: bool,
) -> BlobFigures:
    """Push one blob of ``size`` bytes in each way (a fresh blob each time), then pull the last.

    Each source is hashed before its push starts, so hashing is not part of any figure.
    """
    timeout = httpx.Timeout(600, connect=10)
    with httpx.Client(base_url=base_url, timeout=timeout, headers=headers) as client:
        post_digest = None
        if supports_post_digest(client, repo):
            first = BlobSource(size)
            first.digest  # noqa: B018
            post_digest = _metered(pid, lambda: push_post_digest(client, repo, first), drop_caches)
        whole, chunked_source = BlobSource(size), BlobSource(size)
        whole.digest, chunked_source.digest  # noqa: B018
        post_put = _metered(pid, lambda: push_post_put(client, repo, whole), drop_caches)
        chunked = _metered(
            pid, lambda: push_chunked(client, repo, chunked_source, chunk), drop_caches
        )
        # The blob just pushed is still in the page cache (a hot read, as for a popular layer):
        # keep it there.
        pulled = _metered(pid, lambda: pull(client, repo, chunked_source.digest, size), False)
    return BlobFigures(post_digest, post_put, chunked, pulled)
