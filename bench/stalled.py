"""Ordinary clients' latency while many connections stall: ``python -m bench.stalled``.

Opens ``--stalled`` connections that never finish their headers (slowloris) and as many that
start an upload body and stop sending, then measures ``--seconds`` of manifest GETs and blob
HEADs from ``--clients`` ordinary clients, against semreg (SQLite) and, when installed, the
reference registry. Prints the latency percentiles with and without the stalled connections and
how many stalled connections the server had closed by the end (its header and idle-body
timeouts). Every answer is checked. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.factories import Image, make_image

from bench.targets import DOCKER_REGISTRY, DockerRegistryTarget, SemregTarget, Target


def _stall_headers(target: Target) -> socket.socket:
    host, port = target.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), 10)
    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def _stall_body(target: Target, repo: str, headers: dict[str, str]) -> socket.socket:
    started = httpx.post(f"{target.url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=30)
    location = started.headers["Location"]
    host, port = target.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), 10)
    lines = [f"PATCH {location} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 10000000"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"x" * 1000)
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server let go of a stalled connection: it answered (408) or closed it."""
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return False  # nothing yet: still held open
    except OSError:
        pass
    return True


def _measure(
    target: Target, repo: str, headers: dict[str, str], image, seconds: float, clients: int
) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    layer = next(iter(image.blobs))

    def client() -> None:
        with httpx.Client(base_url=target.url, headers=headers, timeout=60) as http:
            mine = []
            while time.monotonic() < deadline:
                started = time.perf_counter()
                got = http.get(f"/v2/{repo}/manifests/1.0.0", headers={"Accept": image.media_type})
                head = http.head(f"/v2/{repo}/blobs/{layer}")
                mine.append((time.perf_counter() - started) / 2)
                if got.content != image.manifest or head.status_code != 200:
                    raise RuntimeError(f"wrong answer: {got.status_code} {head.status_code}")
            with lock:
                latencies.extend(mine)

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            client()
        except BaseException as exc:  # noqa: BLE001 - reported below, after the other clients
            failures.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} clients failed: {failures[0]!r}")
    return latencies


def _wait_let_go(group: list[socket.socket], since: float, wait: float) -> list[float]:
    """Seconds after ``since`` at which the server let go of each stalled connection."""
    pending, done = list(group), []
    while pending and time.monotonic() - since < wait:
        for sock in list(pending):
            if _closed(sock):
                pending.remove(sock)
                done.append(time.monotonic() - since)
        time.sleep(0.2)
    return done


def _span(seconds: list[float]) -> str:
    return f"{min(seconds):.0f}-{max(seconds):.0f} s" if seconds else "-"


def _push(http: httpx.Client, repo: str, image: Image) -> None:
    """POST + PUT per blob (the reference registry has no one-request push), then the manifest."""
    for digest, data in image.blobs.items():
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        location = started.headers["Location"]  # the reference's carries a _state query
        separator = "&" if "?" in location else "?"
        done = http.put(f"{location}{separator}digest={digest}", content=data)
        if done.status_code != 201:
            raise RuntimeError(f"blob push: {done.status_code} {done.text}")
    manifest = http.put(
        f"/v2/{repo}/manifests/1.0.0",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    if manifest.status_code != 201:
        raise RuntimeError(f"manifest push: {manifest.status_code} {manifest.text}")


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return (
        f"{len(ordered)} requests, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms, mean {statistics.mean(ordered) * 1000:.1f} ms"
    )


def run(target: Target, args: argparse.Namespace) -> None:
    target.start()
    try:
        repo = target.repository("stalled/app")
        headers = target.registry_headers(repo)
        image = make_image(2, seed="stalled")
        with httpx.Client(base_url=target.url, headers=headers, timeout=60) as http:
            _push(http, repo, image)
        quiet = _measure(target, repo, headers, image, args.seconds, args.clients)
        slow_headers = [_stall_headers(target) for _ in range(args.stalled)]
        slow_bodies = [_stall_body(target, repo, headers) for _ in range(args.stalled)]
        started = time.monotonic()
        busy = _measure(target, repo, headers, image, args.seconds, args.clients)
        print(f"{target.label}:")
        print(f"  no stalled connections:  {_summary(quiet)}")
        print(f"  {2 * args.stalled} stalled connections: {_summary(busy)}")
        for name, group in (("headers", slow_headers), ("bodies", slow_bodies)):
            let_go = _wait_let_go(group, started, args.wait)
            print(f"  stalled {name}: {len(let_go)} of {len(group)} let go, after {_span(let_go)}")
        for sock in slow_headers + slow_bodies:
            sock.close()
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=100, help="connections of each kind")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--reference", action="store_true", help="also docker-registry")
    parser.add_argument("--wait", type=float, default=75, help="how long to watch them close")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        run(SemregTarget(Path(work) / "semreg"), args)
        if args.reference and Path(DOCKER_REGISTRY).exists():
            run(DockerRegistryTarget(Path(work) / "reference"), args)


if __name__ == "__main__":
    main()
