"""Where a semreg server spends its time on manifest GET and PUT: py-spy in ``--gil`` mode.

``python -m bench.profile [--postgres [URL]] [--workers N] [--what get put put-versioned]``

Starts semreg (SQLite, or PostgreSQL with ``--postgres``), pushes one manifest, then for each
load attaches ``py-spy record --gil`` (samples only the thread holding the GIL: the work that
serializes a Python process) to the server process(es) while the load runs:

- ``get``: the manifest by tag with ``wrk -t2 -c16`` (httpx when wrk is missing);
- ``put``: distinct manifests by tag ``1.0.<n>``, 8 httpx workers;
- ``put-versioned``: the same in a Container Versioning feed (releases ``<n>.<n>.<n>``-like).

Prints, per load: the rate, the share of GIL-held samples by layer (the library of the leaf
frame), the top functions by self time and semreg's functions by inclusive time. On
PostgreSQL it also prints the database's sessions and commits per request, from
``pg_stat_database`` (a session is a new connection: a backend process forked). The raw
collapsed stacks are kept in ``--out`` (default: a temp folder) for flame graphs.
py-spy must be installed (``pip install py-spy``; not a project dependency) and may need root.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
from tests.factories import OCI_MANIFEST

from bench import manifests, versioning
from bench.content import manifest, manifest_blobs
from bench.targets import SemregTarget

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

# Leaf-frame file path fragments -> layer, first match wins.
LAYERS = (
    ("semreg/", "semreg (routes, services, domain, metadata)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("aiosqlite/", "aiosqlite"),
    ("sqlite3/", "sqlite3"),
    ("starlette/", "Starlette"),
    ("fastapi/", "FastAPI"),
    ("pydantic", "pydantic"),
    ("uvicorn/", "uvicorn"),
    ("httptools", "uvicorn"),
    ("jwt/", "PyJWT"),
    ("anyio/", "anyio (to_thread)"),
    ("uvloop", "event loop"),
    ("asyncio/", "event loop"),
    ("threading.py", "threads"),
    ("concurrent/", "threads"),
    ("queue.py", "threads"),
    ("json/", "json"),
    ("hashlib", "hashlib"),
    ("logging/", "logging"),
)


def _layer(frame: str) -> str:
    for fragment, name in LAYERS:
        if fragment in frame:
            return name
    return "other: " + frame.split("(", 1)[-1].rstrip(")").split("/")[0]


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: ``frame;frame;...;leaf count`` per line (root first)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], top: int = 25) -> str:
    total = sum(count for _, count in stacks)
    if not total:
        return "    (no samples)"
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        layers[_layer(leaf)] += count
        leaves[leaf] += count
        for frame in set(frames):
            if "semreg/" in frame:
                inclusive[frame] += count
    lines = [f"    {total} GIL-held samples", "    by layer (leaf frame):"]
    lines += [f"      {n / total:6.1%}  {name}" for name, n in layers.most_common()]
    lines.append(f"    top {top} functions by self time:")
    lines += [f"      {n / total:6.1%}  {name}" for name, n in leaves.most_common(top)]
    lines.append(f"    semreg functions by inclusive time (top {top}):")
    lines += [f"      {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


class Spy:
    """``py-spy record --gil`` on the server's Python processes while a load runs."""

    def __init__(self, pid: int, out: Path, rate: int) -> None:
        root = psutil.Process(pid)
        # With --workers N the supervisor only waits; profile the workers (its children that
        # run the app), else the one process.
        workers = [p for p in root.children() if "resource_tracker" not in " ".join(p.cmdline())]
        self.pids = [p.pid for p in workers] or [pid]
        self.outputs = [out.with_suffix(f".{p}.txt") for p in self.pids]
        self.rate = rate
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        for pid, output in zip(self.pids, self.outputs, strict=True):
            command = [spy, "record", "--pid", str(pid), "--gil", "--nolineno", "--nonblocking"]
            command += ["--rate", str(self.rate), "--format", "raw", "-o", str(output)]
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
        time.sleep(1.0)  # let py-spy attach
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stacks(self) -> list[tuple[list[str], int]]:
        stacks = []
        for output in self.outputs:
            if output.exists():
                stacks += read_raw(output)
        return stacks


async def _pg_counters(admin_url: str, database: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(
            "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = $1", database
        )
        await conn.execute("SELECT pg_stat_clear_snapshot()")
    finally:
        await conn.close()
    return (int(row["sessions"]), int(row["xact_commit"])) if row else (0, 0)


def pg_counters(target: SemregTarget) -> tuple[int, int] | None:
    if target.database is None:
        return None
    time.sleep(0.6)  # the statistics collector reports with a delay (PostgreSQL 15: 500 ms)
    return asyncio.run(_pg_counters(target.pg_admin_url, target.database.name))


def load_get(target: SemregTarget, seconds: float) -> manifests.Rate:
    repo = target.repository("profile/get")
    manifests.run_put(target.url, target.pid, repo, target.registry_headers(repo), 1, 1, seconds=10)
    url = f"{target.url}/v2/{repo}/manifests/1.0.0"
    headers = target.registry_headers(repo)
    with httpx.Client(headers={**headers, "Accept": OCI_MANIFEST}) as client:
        for _ in range(50):  # warm the caches
            client.get(url).raise_for_status()
    if manifests.wrk_available():
        return manifests.run_get_wrk(url, target.pid, headers, 16, 2, 10_000_000, seconds)
    return manifests.run_get_python(url, target.pid, headers, 16, 10_000_000, seconds)


def load_put(target: SemregTarget, seconds: float, versioned: bool) -> manifests.Rate:
    repo = target.repository("profile/put", versioning=versioned)
    headers = target.registry_headers(repo)
    config, layer = manifest_blobs(repo)
    with httpx.Client(base_url=target.url, headers=headers, timeout=60) as client:
        manifests.push_blob(client, repo, config)
        manifests.push_blob(client, repo, layer)
    count = 5000
    bodies = [manifest(config, layer, n) for n in range(count)]
    tags = [versioning.version(n) for n in range(count)] if versioned else None
    return manifests.put_many(target.url, target.pid, repo, headers, bodies, tags, 8, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_PG_URL, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--what", nargs="+", choices=("get", "put", "put-versioned"), default=["get", "put"]
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="keep py-spy's raw output here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. SEMREG_DATABASE__POOL_SIZE=20",
    )
    args = parser.parse_args(argv)
    os.environ.pop("SEMREG_TEST_COVERAGE", None)
    out = args.out or Path(tempfile.mkdtemp(prefix="semreg-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="semreg-bench-"))
    backend = "postgresql" if args.postgres else "sqlite"
    env = dict(item.split("=", 1) for item in args.env)
    target = SemregTarget(workdir, backend, args.postgres or "", workers=args.workers, env=env)
    try:
        target.start()
        print(f"{target.label}, py-spy --gil at {args.rate}/s, raw stacks in {out}", flush=True)
        for what in args.what:
            before = pg_counters(target)
            with Spy(target.pid, out / f"{backend}-{what}", args.rate) as spy:
                if what == "get":
                    rate = load_get(target, args.seconds)
                else:
                    rate = load_put(target, args.seconds, what == "put-versioned")
            after = pg_counters(target)
            cpu = rate.cpu.server / rate.count * 1000 if rate.cpu and rate.count else 0.0
            print(
                f"\n== {what}: {rate.per_second:,.0f}/s ({rate.count} in {rate.seconds:.1f} s, "
                f"p50 {rate.p50_ms:.1f} ms, p99 {rate.p99_ms:.1f} ms; server CPU {cpu:.2f} ms/req"
                f"{'; ' + rate.cpu.describe() if rate.cpu else ''})"
            )
            if before is not None and after is not None:
                # The load includes the setup requests (feed, blobs, warm-up): a few dozen.
                sessions, commits = (a - b for a, b in zip(after, before, strict=True))
                print(
                    f"    PostgreSQL: {sessions} new sessions ({sessions / rate.count:.3f} per "
                    f"request), {commits} commits ({commits / rate.count:.2f} per request)"
                )
            print(summarize(spy.stacks(), args.top), flush=True)
    finally:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
