"""A minimal HTTP/1.1 load generator for the requests wrk cannot count: HEAD.

wrk 4.1.0 (Debian's) waits for a body of ``Content-Length`` bytes after the answer to a HEAD
request (its parser is never told the request was a HEAD, wg/wrk issue 198), so every
connection stalls after its first HEAD and wrk reports 0 requests. This client does what
``wrk -c<connections> -d<seconds>`` does for one fixed request, in one Python thread on uvloop:
every connection sends the request, reads the answer's head (and its body for a GET, by
``Content-Length``), records the latency and sends again, until the duration is over. A
non-2xx answer fails the run, as it fails a wrk run in bench.manifests.

It costs the client more CPU per request than wrk (Python: about 20-40 µs against a few), which
is why the GET rows stay with wrk; ``client`` in the CPU shares shows what it took.

Imports: stdlib, uvloop, bench.manifests (Rate) and bench.resources (CpuMeter).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import uvloop

from bench.manifests import Rate
from bench.resources import CpuMeter


class AnswerInvalid(RuntimeError):
    """An answer that is not a 2xx, or that this client cannot frame."""


@dataclass
class _Run:
    request: bytes
    has_body: bool
    deadline: float
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            return int(value.strip())
        if name == b"transfer-encoding":
            raise AnswerInvalid(f"cannot frame a {value.strip()!r} body")
    raise AnswerInvalid("an answer without Content-Length")


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, run: _Run, done: asyncio.Future[None]) -> None:
        self.run = run
        self.done = done
        self.buffer = bytearray()
        self.need = -1  # bytes of the current answer (head and body), once its head is in
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def _finish(self, failure: str = "") -> None:
        if failure:
            self.run.failures.append(failure)
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            status = head[9:12]
            if not (head.startswith(b"HTTP/1.1 2") and status.isdigit()):
                line = head.split(b"\r\n", 1)[0].decode(errors="replace")
                self._finish(f"answer {line!r}")
                return
            try:
                body = _content_length(head) if self.run.has_body else 0
            except (AnswerInvalid, ValueError) as exc:
                self._finish(str(exc))
                return
            self.need = end + 4 + body
        if len(self.buffer) < self.need:
            return
        if len(self.buffer) > self.need:
            self._finish("more bytes than one answer (a body on a HEAD answer?)")
            return
        now = time.perf_counter()
        self.run.latencies.append(now - self.started)
        self.buffer.clear()
        self.need = -1
        if now >= self.run.deadline:
            self._finish()
        else:
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.run.failures.append(f"connection lost: {exc or 'closed by the server'}")
            self.done.set_result(None)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _load(
    url: str, method: str, headers: dict[str, str], connections: int, seconds: float
) -> tuple[_Run, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    run = _Run(request, method != "HEAD", 0.0)
    done = [loop.create_future() for _ in range(connections)]
    started = time.perf_counter()
    run.deadline = started + seconds
    for future in done:
        await loop.create_connection(functools.partial(_Connection, run, future), host, port)
    await asyncio.wait_for(asyncio.gather(*done), timeout=seconds + 60)
    return run, time.perf_counter() - started


def run_load(
    url: str, pid: int, method: str, headers: dict[str, str], connections: int, seconds: float
) -> Rate:
    """``method url`` from ``connections`` connections for ``seconds``, metered on ``pid``.

    Raises AnswerInvalid on the first non-2xx answer (or one this client cannot frame).
    """
    with CpuMeter(pid) as meter:
        run, elapsed = uvloop.run(_load(url, method, headers, connections, seconds))
    if run.failures:
        raise AnswerInvalid(
            f"{method} {url}: {len(run.failures)} connections failed after "
            f"{len(run.latencies)} answers; first: {run.failures[0]}"
        )
    ordered = sorted(run.latencies)
    return Rate(
        len(ordered),
        elapsed,
        _percentile(ordered, 0.5),
        _percentile(ordered, 0.99),
        "bench.rawload",
        connections,
        cpu=meter.use,
    )
