"""The side-by-side table of issue 10 (figure ``table``): semreg against docker-registry.

Every target gets the same rows from the same client, on a fresh server (a new data folder and
database: ``Target.fresh`` when other figures ran before on it):

- Load rows, ``connections`` (32) connections for ``seconds`` (10 s) each, with the headers a
  Docker client sends (Bearer token for ``repository:<repo>:pull,push`` on semreg, an OCI
  ``Accept``): manifest GET by tag and by digest with ``wrk -t1 --latency`` (bench.manifests),
  manifest HEAD by tag and a 4 KiB blob HEAD with bench.rawload (wrk 4.1.0 cannot count HEAD
  answers). Before each run one httpx request checks the answer: status 200, the body's sha256
  (GET) or an empty body (HEAD), ``Docker-Content-Digest``, ``Content-Type``, ``Content-Length``.
  Any non-2xx answer during the run fails the row. Rate, p50, p99, and the server's CPU
  (user + system of every process of its tree, ``CpuMeter``) per request.
- Manifest PUT: ``puts`` (2,000) distinct manifests, each by a new release tag
  ``1.<n // 100>.<n % 100>`` (rising in push order, so nearly every push moves ``latest``, ``1``
  and ``1.<minor>``; concurrent pushes arrive a little out of order) into a repository of a
  feed with Container Versioning on, from ``clients`` (16) concurrent requests of one
  httpx.AsyncClient, capped at ``put_seconds``. Afterwards: every PUT answered 201 with the
  manifest's ``Docker-Content-Digest``; on semreg ``latest``, ``1``, ``1.<highest minor>`` and
  ``1.0`` resolve to the highest release pushed of their range.
- Small blobs: ``small_blobs`` (512) distinct random 64 KiB blobs, 16 concurrent clients, each
  ``POST /blobs/uploads/`` then ``PUT <Location>?digest=`` with the body; afterwards a HEAD of
  each (status, ``Content-Length``, ``Docker-Content-Digest``), outside the timed part.
- Large blobs: ``big_count`` (4) x ``big_mib`` (256 MiB) monolithic (``POST`` + ``PUT ?digest=``
  with the body streamed), and one ``chunked_mib`` (512 MiB) push in ``chunk_mib`` (16 MiB)
  ``PATCH`` parts then ``PUT ?digest=``, one client, the page cache settled before each push
  (bench.blobs). Then each of these blobs is pulled once hashed (untimed: verifies the bytes)
  and once timed, streamed and counted (a hot read: the bytes are in the page cache).
- Memory: the peak RSS of the server's whole process tree, sampled every 50 ms through the
  target's whole table, and the peak of its largest single process.

``bench_floor`` measures the floor (bench.floor's apps on uvicorn) under the same wrk load, in
1 and 2 processes (and in as many as semreg ran, when that is another number); ``render`` prints
the table with a ratio column (semreg / docker-registry) per semreg target and each semreg
load row as a share of the floor with as many processes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.factories import OCI_MANIFEST

from bench import blobs, floor, rawload
from bench.content import BlobSource, MiB, manifest, manifest_blobs
from bench.manifests import Rate, push_blob, run_get_wrk
from bench.report import Report
from bench.resources import CpuMeter, RssSampler, rss_each, settle_page_cache, worker_pids
from bench.targets import FLOOR_APPS, DockerRegistryTarget, FloorTarget, Target

SECTION = "table"
FLOOR_SECTION = "floor"
FLOOR_COLUMN = "floor"
PROCESSES = "server processes (read from the process tree)"
RATE_UNIT = "[requests/s]"  # the load rows; each gets a share-of-the-floor row in ``render``
OCTET = "application/octet-stream"
WRONG = "WRONG ANSWER"  # in the note of a row whose server answered wrongly


@dataclass(frozen=True)
class Sizes:
    """How much work each row does; ``QUICK`` for development runs."""

    seconds: int = 10
    connections: int = 32
    puts: int = 2000
    put_seconds: float = 90
    clients: int = 16
    small_blobs: int = 512
    small_kib: int = 64
    small_seconds: float = 60
    big_mib: int = 256
    big_count: int = 4
    chunked_mib: int = 512
    chunk_mib: int = 16


QUICK = Sizes(
    seconds=2,
    puts=200,
    put_seconds=20,
    small_blobs=64,
    small_seconds=20,
    big_mib=32,
    chunked_mib=64,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("figure 'table' (issue 10)")
    group.add_argument(
        "--quick",
        action="store_true",
        help="the table at development size (2 s loads, 200 PUTs, 64 blobs, 32 MiB pushes)",
    )
    group.add_argument("--table-seconds", type=int, help="each load run (10)")
    group.add_argument("--table-puts", type=int, help="manifest PUTs (2000)")
    group.add_argument("--table-put-seconds", type=float, help="manifest PUT time cap (90)")
    group.add_argument("--table-blobs", type=int, help="small blobs (512)")
    group.add_argument("--table-big-mib", type=int, help="each monolithic push (256)")
    group.add_argument("--table-chunked-mib", type=int, help="the chunked push (512)")


def sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else Sizes()
    given = {
        "seconds": args.table_seconds,
        "puts": args.table_puts,
        "put_seconds": args.table_put_seconds,
        "small_blobs": args.table_blobs,
        "big_mib": args.table_big_mib,
        "chunked_mib": args.table_chunked_mib,
    }
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


class AnswerWrong(RuntimeError):
    """A server answered a request wrongly (a finding, not a benchmark failure)."""


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise AnswerWrong(
            f"{what}: {response.status_code}, expected {status}: {response.text:.300}"
        )


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def check_answer(response: httpx.Response, body: bytes, media_type: str) -> None:
    """A manifest or blob answer: 200, the body (GET) or none (HEAD), and its headers.

    Raises AnswerWrong listing every difference.
    """
    digest = _sha256(body)
    method = response.request.method
    problems = []
    if response.status_code != 200:
        problems.append(f"status {response.status_code}")
    got = response.headers.get("docker-content-digest")
    if got != digest:
        problems.append(f"Docker-Content-Digest {got!r}, expected {digest!r}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type != media_type:
        problems.append(f"Content-Type {content_type!r}, expected {media_type!r}")
    length = response.headers.get("content-length")
    if length != str(len(body)):
        problems.append(f"Content-Length {length!r}, expected {len(body)}")
    if method == "GET" and _sha256(response.content) != digest:
        problems.append(
            f"body of {len(response.content)} bytes with sha256 {_sha256(response.content)}"
        )
    if method == "HEAD" and response.content:
        problems.append(f"a HEAD answer with a body of {len(response.content)} bytes")
    if problems:
        raise AnswerWrong(f"{method} {response.request.url.path}: " + "; ".join(problems))


class _Rows:
    """Adds one target's rows to the report (and prints each as it comes)."""

    def __init__(self, report: Report, label: str) -> None:
        self.report = report
        self.label = label

    def add(self, row: str, text: str, value: object, better: str | None = None) -> None:
        self.report.add(row, self.label, text, value, SECTION, better)
        print(f"    {row}: {text}", flush=True)

    def failed(self, rows: list[str], exc: BaseException) -> None:
        kind = WRONG if isinstance(exc, AnswerWrong) else "failed"
        for row in rows:
            self.report.add(row, self.label, "FAILED (see notes)", None, SECTION)
        self.report.note(f"{self.label}: table: {rows[0]}: {kind}: {exc!s:.600}")

    def rate(self, name: str, rate: Rate, unit: str) -> None:
        """A load row: the rate, its p50/p99 latency and the server's CPU per request."""
        text = f"{rate.per_second:,.0f}"
        if rate.notes:
            text += "".join(f" [{note}]" for note in rate.notes)
        self.add(f"{name} {unit}", text, round(rate.per_second, 1), "higher")
        self.add(f"{name}: p50 latency [ms]", f"{rate.p50_ms:.1f}", round(rate.p50_ms, 2), "lower")
        self.add(f"{name}: p99 latency [ms]", f"{rate.p99_ms:.1f}", round(rate.p99_ms, 2), "lower")
        if rate.cpu is not None and rate.count:
            per = rate.cpu.server / rate.count * 1000
            print(f"      ({rate.count:,} in {rate.seconds:.1f} s; {rate.cpu.describe()})")
            self.add(f"{name}: server CPU per request [ms]", f"{per:.2f}", round(per, 3), "lower")


def _names(name: str, unit: str) -> list[str]:
    suffixes = ("p50 latency [ms]", "p99 latency [ms]", "server CPU per request [ms]")
    return [f"{name} {unit}", *(f"{name}: {s}" for s in suffixes)]


@dataclass
class _Seeded:
    """One manifest by tag ``1.0.0`` and its two blobs, in a versioned repository."""

    repo: str
    body: bytes
    layer: bytes


def _seed(target: Target) -> _Seeded:
    repo = target.repository("bench/table-get", versioning=True)
    config, layer = manifest_blobs(repo)
    body = manifest(config, layer, 0)
    headers = target.registry_headers(repo)
    with httpx.Client(base_url=target.url, headers=headers, timeout=60) as client:
        push_blob(client, repo, config)
        push_blob(client, repo, layer)
        response = client.put(
            f"/v2/{repo}/manifests/1.0.0", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        _expect(response, 201, "PUT manifest 1.0.0")
    return _Seeded(repo, body, layer)


def _loads(target: Target, seeded: _Seeded, size: Sizes, rows: _Rows) -> None:
    conns, repo = size.connections, seeded.repo
    wrk = f"wrk -t1 -c{conns} -d{size.seconds}s"
    raw = f"bench.rawload -c{conns} -d{size.seconds}s"
    manifest_digest = _sha256(seeded.body)
    by_tag, by_digest = "manifests/1.0.0", f"manifests/{manifest_digest}"
    blob = f"blobs/{_sha256(seeded.layer)}"
    loads = [
        ("manifest GET by tag", wrk, "GET", by_tag, seeded.body, OCI_MANIFEST),
        ("manifest GET by digest", wrk, "GET", by_digest, seeded.body, OCI_MANIFEST),
        ("manifest HEAD by tag", raw, "HEAD", by_tag, seeded.body, OCI_MANIFEST),
        ("blob HEAD, a 4 KiB layer", raw, "HEAD", blob, seeded.layer, OCTET),
    ]
    for name, tool, method, path, body, media_type in loads:
        label = f"{name} ({tool})"
        print(f"  table: {label} ...", flush=True)
        try:
            headers = target.registry_headers(repo)
            url = f"{target.url}/v2/{repo}/{path}"
            with httpx.Client(headers=headers, timeout=60) as client:
                answer = client.request(method, url, headers={"Accept": OCI_MANIFEST})
            check_answer(answer, body, media_type)
            if method == "GET":
                rate = run_get_wrk(url, target.pid, headers, conns, 1, None, size.seconds)
            else:
                headers = {**headers, "Accept": OCI_MANIFEST}
                rate = rawload.run_load(url, target.pid, method, headers, conns, size.seconds)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            rows.failed(_names(label, RATE_UNIT), exc)
            continue
        rows.rate(label, rate, RATE_UNIT)


@dataclass
class _Burst:
    """Requests of a timed burst: ``done`` of them (jobs 0 to done-1) and the wrong ones."""

    done: int
    seconds: float
    latencies: list[float]
    problems: dict[int, str] = field(default_factory=dict)

    def rate(self, clients: int) -> Rate:
        ordered = sorted(self.latencies)

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0

        return Rate(self.done, self.seconds, at(0.5), at(0.99), "httpx.AsyncClient", clients)


Job = Callable[[httpx.AsyncClient], Awaitable[str]]  # "" when the answer was right


async def _burst(
    base_url: str, headers: dict[str, str], jobs: list[Job], clients: int, seconds: float
) -> _Burst:
    """Run ``jobs`` in order from ``clients`` concurrent requests until done or ``seconds``."""
    burst = _Burst(0, 0.0, [])
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while burst.done < len(jobs) and time.perf_counter() < deadline:
            number = burst.done
            burst.done += 1
            started = time.perf_counter()
            try:
                problem = await jobs[number](client)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            burst.latencies.append(time.perf_counter() - started)
            if problem:
                burst.problems[number] = problem

    timeout = httpx.Timeout(60, connect=10)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=timeout, limits=limits
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        burst.seconds = time.perf_counter() - started
    return burst


def _wrong(burst: _Burst, what: str) -> AnswerWrong:
    first = min(burst.problems)
    return AnswerWrong(
        f"{len(burst.problems)} of {burst.done} {what} answered wrongly; "
        f"first (#{first}): {burst.problems[first]}"
    )


def release(n: int) -> str:
    """The ``n``-th release tag of the PUT row: ``1.<n // 100>.<n % 100>``, rising with ``n``."""
    return f"1.{n // 100}.{n % 100}"


def _put_job(repo: str, tag: str, body: bytes) -> Job:
    digest = _sha256(body)

    async def job(client: httpx.AsyncClient) -> str:
        response = await client.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        if response.status_code != 201:
            return f"PUT {tag}: {response.status_code} {response.text:.200}"
        got = response.headers.get("docker-content-digest")
        if got != digest:
            return f"PUT {tag}: Docker-Content-Digest {got!r}, expected {digest!r}"
        return ""

    return job


def _check_virtual_tags(
    target: Target, repo: str, bodies: list[bytes], pushed: list[int]
) -> list[str]:
    """On semreg: latest, 1, 1.<highest minor> and 1.0 point at the highest pushed release."""
    highest = max(pushed)
    expect = {"latest": highest, "1": highest, f"1.{highest // 100}": highest}
    in_first_minor = [n for n in pushed if n < 100]
    if in_first_minor and highest >= 100:
        expect["1.0"] = max(in_first_minor)
    problems = []
    with httpx.Client(base_url=target.url, headers=target.registry_headers(repo)) as client:
        for tag, n in expect.items():
            answer = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            got = answer.headers.get("docker-content-digest")
            if answer.status_code != 200 or got != _sha256(bodies[n]):
                problems.append(
                    f"{tag}: {answer.status_code} {got!r}, expected {release(n)} "
                    f"({_sha256(bodies[n])})"
                )
    return problems


def _puts(target: Target, size: Sizes, rows: _Rows) -> None:
    name = f"manifest PUT, {size.clients} clients, new release tags (semreg: versioned feed)"
    print(f"  table: {name}: up to {size.puts:,} or {size.put_seconds:.0f} s ...", flush=True)
    try:
        repo = target.repository("bench/table-put", versioning=True)
        headers = target.registry_headers(repo)
        config, layer = manifest_blobs(repo)
        with httpx.Client(base_url=target.url, headers=headers, timeout=60) as client:
            push_blob(client, repo, config)
            push_blob(client, repo, layer)
        bodies = [manifest(config, layer, n) for n in range(size.puts)]
        jobs = [_put_job(repo, release(n), bodies[n]) for n in range(size.puts)]
        with CpuMeter(target.pid) as meter:
            burst = asyncio.run(_burst(target.url, headers, jobs, size.clients, size.put_seconds))
        rate = burst.rate(size.clients)
        rate.cpu = meter.use
        print(f"      ({burst.done:,} PUTs in {burst.seconds:.1f} s, {rate.per_second:.0f}/s)")
        if burst.problems:
            raise _wrong(burst, "PUTs")
        if target.has_feeds:
            pushed = list(range(burst.done))
            problems = _check_virtual_tags(target, repo, bodies, pushed)
            if problems:
                raise AnswerWrong("after the PUTs, virtual tags: " + "; ".join(problems))
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        rows.failed(_names(name, "[PUT/s]"), exc)
        return
    if burst.done < size.puts:
        rate.notes.append(f"time cap: {burst.done:,} of {size.puts:,}")
    rows.rate(name, rate, "[PUT/s]")


def _upload_job(repo: str, data: bytes) -> Job:
    digest = _sha256(data)

    async def job(client: httpx.AsyncClient) -> str:
        response = await client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
        if response.status_code != 202 or "location" not in response.headers:
            return f"POST /blobs/uploads/: {response.status_code} {response.text:.200}"
        location = httpx.URL(response.headers["location"]).copy_merge_params({"digest": digest})
        response = await client.put(location, content=data, headers={"Content-Type": OCTET})
        if response.status_code != 201:
            return f"PUT ?digest={digest}: {response.status_code} {response.text:.200}"
        got = response.headers.get("docker-content-digest")
        if got is not None and got != digest:
            return f"PUT ?digest={digest}: Docker-Content-Digest {got!r}"
        return ""

    return job


def _head_job(repo: str, data: bytes) -> Job:
    digest = _sha256(data)

    async def job(client: httpx.AsyncClient) -> str:
        answer = await client.head(f"/v2/{repo}/blobs/{digest}")
        got = (answer.headers.get("content-length"), answer.headers.get("docker-content-digest"))
        if answer.status_code != 200 or got != (str(len(data)), digest):
            return f"HEAD {digest}: {answer.status_code} {got}, expected ({len(data)}, {digest})"
        return ""

    return job


def _small_blobs(target: Target, size: Sizes, rows: _Rows) -> None:
    row = (
        f"small blobs: {size.small_blobs} x {size.small_kib} KiB, POST + PUT, "
        f"{size.clients} clients [blobs/s]"
    )
    print(f"  table: {row} ...", flush=True)
    try:
        repo = target.repository("bench/table-small")
        headers = target.registry_headers(repo)
        data = [os.urandom(size.small_kib * 1024) for _ in range(size.small_blobs)]
        jobs = [_upload_job(repo, d) for d in data]
        with CpuMeter(target.pid) as meter:
            burst = asyncio.run(_burst(target.url, headers, jobs, size.clients, size.small_seconds))
        timed = burst.rate(size.clients)
        print(
            f"      ({burst.done} in {burst.seconds:.1f} s, POST + PUT p50 {timed.p50_ms:.0f} ms, "
            f"p99 {timed.p99_ms:.0f} ms; {meter.use.describe()})"
        )
        if burst.problems:
            raise _wrong(burst, "uploads")
        heads = [_head_job(repo, d) for d in data[: burst.done]]
        checked = asyncio.run(_burst(target.url, headers, heads, size.clients, 120))
        if checked.problems:
            raise _wrong(checked, "HEADs after the uploads")
        if checked.done < len(heads):
            raise RuntimeError(f"only {checked.done} of {len(heads)} blobs checked in 120 s")
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        rows.failed([row], exc)
        return
    per_second = burst.done / burst.seconds
    text = f"{per_second:,.0f}"
    if burst.done < size.small_blobs:
        text += f" [time cap: {burst.done} of {size.small_blobs}]"
    rows.add(row, text, round(per_second, 1), "higher")


def _mib_per_s(transfers: list[blobs.Transfer]) -> tuple[float, str]:
    rate = sum(t.size for t in transfers) / MiB / sum(t.seconds for t in transfers)
    if len(transfers) == 1:
        return rate, f"{rate:,.0f}"
    each = sorted(t.mib_per_s for t in transfers)
    return rate, f"{rate:,.0f} ({each[0]:,.0f}-{each[-1]:,.0f})"


def _pull_hashed(client: httpx.Client, repo: str, source: BlobSource) -> None:
    hasher = hashlib.sha256()
    received = 0
    with client.stream("GET", f"/v2/{repo}/blobs/{source.digest}") as response:
        _expect(response, 200, f"GET blob {source.digest}")
        for chunk in response.iter_raw():
            hasher.update(chunk)
            received += len(chunk)
    got = f"sha256:{hasher.hexdigest()}"
    if (received, got) != (source.size, source.digest):
        raise AnswerWrong(
            f"GET blob {source.digest}: {received} bytes with sha256 {got}, expected {source.size}"
        )


def _large_blobs(target: Target, size: Sizes, drop: bool, rows: _Rows) -> None:
    big, chunked = size.big_mib * MiB, size.chunked_mib * MiB
    mono_row = f"push {size.big_count} x {size.big_mib} MiB, POST + PUT streamed [MiB/s]"
    chunk_row = f"push {size.chunked_mib} MiB, {size.chunk_mib} MiB PATCH parts + PUT [MiB/s]"
    pull_row = f"pull the {size.big_count + 1} blobs pushed, GET streamed and counted [MiB/s]"
    print(f"  table: {mono_row}; {chunk_row}; pull ...", flush=True)
    sources = [BlobSource(big) for _ in range(size.big_count)]
    last = BlobSource(chunked)
    for source in [*sources, last]:
        source.digest  # noqa: B018  (hashed before any clock starts)
    repo = target.repository("bench/table-large")
    timeout = httpx.Timeout(600, connect=10)
    with httpx.Client(
        base_url=target.url, headers=target.registry_headers(repo), timeout=timeout
    ) as client:
        try:
            pushes = []
            for source in sources:
                settle_page_cache(drop)  # no push pays for the one before it
                pushes.append(blobs.push_post_put(client, repo, source))
            value, text = _mib_per_s(pushes)
            rows.add(mono_row, text, round(value, 1), "higher")
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            rows.failed([mono_row], exc)
            sources = []
        try:
            settle_page_cache(drop)
            value, text = _mib_per_s([blobs.push_chunked(client, repo, last, size.chunk_mib * MiB)])
            rows.add(chunk_row, text, round(value, 1), "higher")
            sources.append(last)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            rows.failed([chunk_row], exc)
        if not sources:
            return
        try:
            for source in sources:
                _pull_hashed(client, repo, source)
            pulls = [blobs.pull(client, repo, s.digest, s.size) for s in sources]
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            rows.failed([pull_row], exc)
            return
    value, text = _mib_per_s(pulls)
    rows.add(pull_row, text, round(value, 1), "higher")


def _processes(target: Target) -> tuple[str, int]:
    """What serves (text) and how many processes serve requests."""
    total, workers = len(rss_each(target.pid)), len(worker_pids(target.pid))
    if workers == 1 and total == 1:
        return "1", 1
    return f"{workers} workers ({_processes_word(total)} in all)", workers


def _processes_word(n: int) -> str:
    return f"{n} process{'es' if n != 1 else ''}"


def bench_table(target: Target, args: argparse.Namespace, report: Report) -> None:
    """All rows of the table for one target (a fresh server; see the module docstring)."""
    size = sizes(args)
    rows = _Rows(report, target.label)
    text, workers = _processes(target)
    rows.add(PROCESSES, text, workers)
    with RssSampler(target.pid) as sampler:
        try:
            seeded = _seed(target)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            rows.failed(["manifest GET by tag (setup: push one manifest)"], exc)
        else:
            _loads(target, seeded, size, rows)
        _puts(target, size, rows)
        _small_blobs(target, size, rows)
        _large_blobs(target, size, not args.keep_page_cache, rows)
    rows.add(
        "peak RSS, all server processes together [MiB]",
        f"{sampler.peak / MiB:.1f} ({_processes_word(sampler.processes)})",
        round(sampler.peak / MiB, 1),
        "lower",
    )
    rows.add(
        "peak RSS, largest single process [MiB]",
        f"{sampler.peak_process / MiB:.1f}",
        round(sampler.peak_process / MiB, 1),
        "lower",
    )


def _floor_counts(report: Report) -> list[int]:
    seen = {v for v in report.values.get(PROCESSES, {}).values() if isinstance(v, int)}
    return sorted({1, 2} | seen)


def bench_floor(args: argparse.Namespace, report: Report, workdir: Path) -> None:
    """The floor apps under the table's GET load, in 1, 2 (and semreg's number of) processes."""
    size = sizes(args)
    print(f"\n== floor (load average {os.getloadavg()[0]:.2f}) ==", flush=True)
    for app in FLOOR_APPS:
        for workers in _floor_counts(report):
            target = FloorTarget(workdir, app, workers)
            print(f"  floor: {target.label}, wrk -t1 -c{size.connections} ...", flush=True)
            try:
                target.start()
                with httpx.Client(timeout=30) as client:
                    answer = client.get(target.manifest_url, headers={"Accept": OCI_MANIFEST})
                check_answer(answer, floor.BODY, floor.MEDIA_TYPE)
                rate = run_get_wrk(
                    target.manifest_url, target.pid, {}, size.connections, 1, None, size.seconds
                )
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                report.note(f"floor: {target.label} failed: {exc!s:.300}")
                continue
            finally:
                target.stop()
            cpu = rate.cpu.server / rate.count * 1000 if rate.cpu and rate.count else float("nan")
            value = {
                "per_second": round(rate.per_second, 1),
                "p50_ms": round(rate.p50_ms, 2),
                "p99_ms": round(rate.p99_ms, 2),
                "cpu_ms": round(cpu, 3),
                "workers": workers,
                "app": app,
            }
            text = f"{rate.per_second:,.0f}/s, p50 {rate.p50_ms:.1f} ms, p99 {rate.p99_ms:.1f} ms"
            report.add(target.label, FLOOR_COLUMN, text, value, FLOOR_SECTION)
            print(f"    {text}; server CPU {cpu:.3f} ms/request", flush=True)


def _markdown(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(c) for c in column) for column in zip(header, *lines, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + [fmt(line) for line in lines]
    )


def _floors(report: Report) -> dict[tuple[str, int], float]:
    found = {}
    for row, cells in report.values.items():
        value = cells.get(FLOOR_COLUMN)
        if report.sections.get(row) == FLOOR_SECTION and isinstance(value, dict):
            found[(str(value["app"]), int(value["workers"]))] = float(value["per_second"])
    return found


def _share_of_floor(value: object, workers: object, floors: dict[tuple[str, int], float]) -> str:
    if not isinstance(value, float | int) or not isinstance(workers, int):
        return "-"
    shares = [
        f"{value / floors[(app, workers)]:.1%} of {title}"
        for app, title in FLOOR_APPS.items()
        if (app, workers) in floors
    ]
    return ", ".join(shares) + f" ({_processes_word(workers)})" if shares else "-"


def render(report: Report) -> str:
    """The table: docker-registry, then per semreg target its column and its ratio."""
    reference = DockerRegistryTarget.label
    semregs = [t for t in report.targets if t.startswith("semreg")]
    header = ["figure", reference]
    for label in semregs:
        header += [label, "ratio"]
    floors = _floors(report)
    lines = []
    for row, cells in report.rows.items():
        if report.sections[row] != SECTION:
            continue
        values = report.values[row]
        line = [row, cells.get(reference, "-")]
        for label in semregs:
            line.append(cells.get(label, "-"))
            ours, theirs, better = values.get(label), values.get(reference), report.better.get(row)
            if (
                better
                and isinstance(ours, float | int)
                and isinstance(theirs, float | int)
                and theirs
            ):
                line.append(
                    f"{ours / theirs:.2f}" + (" (lower is better)" if better == "lower" else "")
                )
            else:
                line.append("-")
        lines.append(line)
        if row.endswith(RATE_UNIT):
            name = row.removesuffix(RATE_UNIT).strip()
            share = [f"{name}: share of the floor (as many processes)", "-"]
            for label in semregs:
                workers = report.values.get(PROCESSES, {}).get(label)
                share += [_share_of_floor(values.get(label), workers, floors), "-"]
            lines.append(share)
    out = [_markdown(header, lines)]
    floor_lines: list[list[str]] = []
    for row, figures in report.values.items():
        value = figures.get(FLOOR_COLUMN)
        if report.sections.get(row) == FLOOR_SECTION and isinstance(value, dict):
            floor_lines.append(
                [
                    row,
                    f"{value['per_second']:,.0f}",
                    f"{value['p50_ms']:.1f}",
                    f"{value['p99_ms']:.1f}",
                    f"{value['cpu_ms']:.3f}",
                ]
            )
    if floor_lines:
        header = ["floor: bench.floor on uvicorn, GET", "requests/s", "p50 [ms]", "p99 [ms]"]
        out += ["", _markdown([*header, "server CPU per request [ms]"], floor_lines)]
    return "\n".join(out)
