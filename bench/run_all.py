"""Run every benchmark and print one table: ``python -m bench.run_all`` (``make bench``).

Targets, one after the other on the same machine with the same client code:
semreg on SQLite; semreg on PostgreSQL with ``--postgres [URL]`` or ``SEMREG_TEST_DATABASE_URL``
(a throw-away database is created and dropped), each at semreg's default number of worker
processes or with ``--workers N``; the CNCF reference registry (Debian's
``docker-registry``, installed with apt-get when missing and allowed), skipped with a note when
it cannot be had. Every server listens on 127.0.0.1 and uses a temporary data folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import blobs, compare, manifests, memory, versioning
from bench.content import MiB
from bench.report import Report, loadavg, machine
from bench.resources import DROP_CACHES
from bench.targets import (
    DOCKER_REGISTRY,
    DockerRegistryTarget,
    SemregTarget,
    Target,
    ensure_debian_package,
)

FIGURES = ("blobs", "manifests", "memory", "versioning", "table")
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("SEMREG_TEST_DATABASE_URL") or DEFAULT_PG_URL,
        default=os.environ.get("SEMREG_TEST_DATABASE_URL") or None,
        metavar="ADMIN_URL",
        help="also measure semreg on PostgreSQL (default: SEMREG_TEST_DATABASE_URL)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip semreg on SQLite")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="semreg serve --workers N (uvicorn worker processes sharing the database; "
        "default: none given, semreg's default)",
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the docker-registry comparison"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never apt-get install docker-registry or wrk when missing",
    )
    parser.add_argument(
        "--keep-page-cache",
        action="store_true",
        help="do not drop the page cache before each large push (dropping needs root)",
    )
    parser.add_argument(
        "--only", choices=FIGURES, action="append", help="run only these figures (repeatable)"
    )
    parser.add_argument("--blob-mib", type=int, default=1024, help="blob size for (1) and (2)")
    parser.add_argument("--chunk-mib", type=int, default=32, help="PATCH chunk size")
    parser.add_argument("--memory-mib", type=int, default=2048, help="blob size for (5)")
    parser.add_argument("--put-count", type=int, default=2000, help="manifest PUT cap")
    parser.add_argument("--put-seconds", type=float, default=15, help="manifest PUT time cap")
    parser.add_argument("--put-workers", type=int, default=8)
    parser.add_argument("--get-count", type=int, default=50_000, help="manifest GET cap (httpx)")
    parser.add_argument("--get-seconds", type=float, default=10, help="manifest GET time cap")
    parser.add_argument("--get-connections", type=int, default=16)
    parser.add_argument(
        "--versioning-small", type=int, default=100, help="releases in the small repository"
    )
    parser.add_argument(
        "--versioning-large", type=int, default=10_000, help="releases in the large repository"
    )
    parser.add_argument(
        "--versioning-count", type=int, default=1000, help="new releases measured per repository"
    )
    parser.add_argument(
        "--versioning-fill-seconds",
        type=float,
        default=600,
        help="time cap for filling both repositories",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp folders")
    compare.add_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write raw figures here")
    return parser.parse_args(argv)


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def _rate(rate: manifests.Rate) -> str:
    text = (
        f"{rate.per_second:,.0f}/s (p50 {rate.p50_ms:.1f} ms, p99 {rate.p99_ms:.1f} ms; "
        f"{rate.count} in {rate.seconds:.1f} s)"
    )
    if rate.quarters is not None:
        text += f"; first/last quarter {rate.quarters[0]:,.0f}/{rate.quarters[1]:,.0f} per s"
    return text + "".join(f" [{n}]" for n in rate.notes)


def _cpu_per_request(rate: manifests.Rate) -> tuple[str, float | None]:
    if rate.cpu is None or not rate.count:
        return "-", None
    per = rate.cpu.server / rate.count * 1000
    return f"{per:.2f} ms/req ({rate.cpu.describe()})", round(per, 3)


def _cpu_per_gib(transfer: blobs.Transfer) -> tuple[str, float | None]:
    if transfer.cpu is None:
        return "-", None
    per = transfer.cpu.server / (transfer.size / (1024 * MiB))
    return f"{per:.2f} s/GiB ({transfer.cpu.describe()})", round(per, 3)


def _show(report: Report, row: str, target: Target) -> None:
    print(f"    {row}: {report.rows[row][target.label]}", flush=True)


def bench_blobs(target: Target, args: argparse.Namespace, report: Report) -> None:
    size, chunk = args.blob_mib * MiB, args.chunk_mib * MiB
    label = _mib(size)
    repo = target.repository("bench/blobs")
    print(f"  blobs: pushing {label} three ways and pulling it ...", flush=True)
    headers = target.registry_headers(repo)
    drop = not args.keep_page_cache
    figures = blobs.run(target.url, target.pid, repo, size, chunk, headers, drop)
    rows = [
        (f"(1) push {label}: POST ?digest= [MiB/s]", figures.post_digest),
        (f"(1) push {label}: POST + PUT [MiB/s]", figures.post_put),
        (f"(1) push {label}: PATCH {args.chunk_mib} MiB chunks [MiB/s]", figures.chunked),
        (f"(2) pull {label}: GET [MiB/s]", figures.pull),
    ]
    for row, transfer in rows:
        if transfer is None:
            report.add(row, target.label, "not supported (202)")
            _show(report, row, target)
            continue
        text = f"{transfer.mib_per_s:,.0f} ({transfer.seconds:.2f} s)"
        report.add(row, target.label, text, round(transfer.mib_per_s, 1))
        _show(report, row, target)
        cpu_text, cpu_value = _cpu_per_gib(transfer)
        report.add(f"{row[:-8]} server CPU", target.label, cpu_text, cpu_value, "cpu")


def bench_manifests(target: Target, args: argparse.Namespace, report: Report) -> None:
    repo = target.repository("bench/manifests")
    print(
        f"  manifests: PUT up to {args.put_count} in {args.put_seconds:.0f} s "
        f"with {args.put_workers} workers ...",
        flush=True,
    )
    put, tag = manifests.run_put(
        target.url,
        target.pid,
        repo,
        target.registry_headers(repo),
        args.put_workers,
        args.put_count,
        args.put_seconds,
    )
    rates = [(f"(3) manifest PUT/s (httpx, {args.put_workers} workers)", put)]
    report.add(rates[0][0], target.label, _rate(put), round(put.per_second, 1))
    _show(report, rates[0][0], target)
    if target.has_feeds:
        # Release tags in a Container Versioning feed: each push also moves latest, 1 and 1.0.
        versioned_repo = target.repository("bench/versioned", versioning=True)
        versioned, _ = manifests.run_put(
            target.url,
            target.pid,
            versioned_repo,
            target.registry_headers(versioned_repo),
            args.put_workers,
            args.put_count,
            args.put_seconds,
        )
        row = f"(3) manifest PUT/s, Container Versioning feed ({args.put_workers} workers)"
        rates.append((row, versioned))
        report.add(row, target.label, _rate(versioned), round(versioned.per_second, 1))
        _show(report, row, target)

    url = f"{target.url}/v2/{repo}/manifests/{tag}"
    conns = args.get_connections
    print(f"  manifests: GET by tag for {args.get_seconds:.0f} s, {conns} connections ...")
    get = manifests.run_get_python(
        url, target.pid, target.registry_headers(repo), conns, args.get_count, args.get_seconds
    )
    rates.append((f"(4) manifest GET/s (httpx.AsyncClient, {conns} conns)", get))
    report.add(rates[-1][0], target.label, _rate(get), round(get.per_second, 1))
    _show(report, rates[-1][0], target)
    if manifests.wrk_available():
        threads = max(1, min(2, os.cpu_count() or 1))
        headers = target.registry_headers(repo)
        wrk = manifests.run_get_wrk(
            url, target.pid, headers, conns, threads, 5_000_000, args.get_seconds
        )
        rates.append((f"(4) manifest GET/s (wrk -t{threads}, {conns} conns)", wrk))
        report.add(rates[-1][0], target.label, _rate(wrk), round(wrk.per_second, 1))
        _show(report, rates[-1][0], target)
    for row, rate in rates:
        text, value = _cpu_per_request(rate)
        report.add(row.replace("/s", "", 1) + ": server CPU", target.label, text, value, "cpu")


def bench_memory(target: Target, args: argparse.Namespace, report: Report) -> None:
    size = args.memory_mib * MiB
    repo = target.repository("bench/memory")
    print(f"  memory: RSS every 50 ms while pushing/pulling {_mib(size)} ...", flush=True)
    headers = target.registry_headers(repo)
    drop = not args.keep_page_cache
    figures = memory.run(target.url, target.pid, repo, size, args.chunk_mib * MiB, headers, drop)
    row = "(5) server RSS before [MiB]"
    report.add(row, target.label, f"{figures.baseline / MiB:.1f}", figures.baseline)
    _show(report, row, target)
    for phase in figures.phases:
        row = f"(5) peak RSS, {phase.name} {_mib(size)} [MiB]"
        text = (
            f"{phase.peak / MiB:.1f} ({phase.how}, {phase.samples} samples, {phase.seconds:.1f} s"
        )
        if phase.processes > 1:
            text += f"; {phase.processes} processes, largest {phase.peak_process / MiB:.1f}"
        text += ")"
        report.add(row, target.label, text, phase.peak)
        _show(report, row, target)

    def verdict(peak: int) -> str:
        return f"{peak / 1e6:.1f} MB: {'under' if peak < memory.BUDGET_BYTES else 'OVER'}"

    row = "(5) peak RSS vs 150 MB budget"
    text = verdict(figures.peak)
    if figures.processes > 1:
        text += f" (all {figures.processes} processes; largest {verdict(figures.peak_process)})"
    report.add(row, target.label, text, figures.peak)
    _show(report, row, target)


def _fill(fill: versioning.Fill) -> str:
    text = f"{fill.per_second:,.0f}/s ({fill.pushed:,} in {fill.seconds:.1f} s)"
    if fill.pushed < fill.wanted:
        text += f" [fill time cap: only {fill.pushed:,} of {fill.wanted:,}]"
    if len(fill.blocks) > 1:
        text += (
            f"; first/last {versioning.BLOCK:,}: {fill.blocks[0]:,.0f}/{fill.blocks[-1]:,.0f} per s"
        )
    return text


def bench_versioning(target: Target, args: argparse.Namespace, report: Report) -> None:
    if not target.has_feeds:
        return  # Container Versioning is semreg's
    small, large = args.versioning_small, args.versioning_large
    small_repo = target.repository(f"bench/releases-{small}", versioning=True)
    feed = small_repo.split("/", 1)[0]
    large_repo = f"{feed}/bench/releases-{large}"
    print(
        f"  versioning: filling {small:,} and {large:,} releases ({args.put_workers} workers, "
        f"cap {args.versioning_fill_seconds:.0f} s), then PUT up to {args.versioning_count:,} "
        f"new releases in {args.put_seconds:.0f} s into each ...",
        flush=True,
    )
    figures = versioning.run(
        target.url,
        target.pid,
        small_repo,
        large_repo,
        target.registry_headers,
        small,
        large,
        args.versioning_count,
        args.put_workers,
        args.put_seconds,
        args.versioning_fill_seconds,
        target.vacuum,
    )
    for wanted, fill in ((small, figures.small_fill), (large, figures.large_fill)):
        row = f"(6) fill to {wanted:,} releases [PUT/s]"
        value = {
            "per_second": round(fill.per_second, 1),
            "pushed": fill.pushed,
            "blocks": [round(b, 1) for b in fill.blocks],
        }
        report.add(row, target.label, _fill(fill), value)
        _show(report, row, target)
    measured = [
        (f"(6) manifest PUT/s into {small:,} releases ({args.put_workers} workers)", figures.small),
        (f"(6) manifest PUT/s into {large:,} releases ({args.put_workers} workers)", figures.large),
    ]
    for row, rate in measured:
        report.add(row, target.label, _rate(rate), round(rate.per_second, 1))
        _show(report, row, target)
    row = f"(6) PUT/s ratio, {large:,} / {small:,} releases"
    report.add(row, target.label, f"{figures.ratio:.2f}", round(figures.ratio, 3))
    _show(report, row, target)
    for row, rate in measured:
        text, value = _cpu_per_request(rate)
        report.add(row.replace("/s", "", 1) + ": server CPU", target.label, text, value, "cpu")


RUNNERS: dict[str, Callable[[Target, argparse.Namespace, Report], None]] = {
    "blobs": bench_blobs,
    "manifests": bench_manifests,
    "memory": bench_memory,
    "versioning": bench_versioning,
    "table": compare.bench_table,
}


def run_target(target: Target, args: argparse.Namespace, report: Report) -> None:
    report.add_target(target.label)
    print(f"\n== {target.label} (load average {loadavg()}) ==", flush=True)
    try:
        target.start()
    except (RuntimeError, OSError) as exc:
        report.note(f"{target.label}: could not start: {exc}")
        target.stop()
        return
    try:
        for index, name in enumerate(args.only or FIGURES):
            started = time.perf_counter()
            try:
                if name == "table" and index > 0:
                    # The table's rates and its memory peak are those of a fresh server.
                    print("  table: restarting the server on empty data ...", flush=True)
                    target.fresh()
                RUNNERS[name](target, args, report)
            except Exception as exc:  # noqa: BLE001  (report the failure, go on with the rest)
                traceback.print_exc()
                report.note(f"{target.label}: {name} failed: {exc!s:.300}")
                print(target.log_tail(), file=sys.stderr)
            print(
                f"  ({name}: {time.perf_counter() - started:.1f} s, load {loadavg()})", flush=True
            )
    finally:
        target.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The servers must not run under coverage even when the caller's environment asks for it.
    os.environ.pop("SEMREG_TEST_COVERAGE", None)
    info = machine()
    info["page cache before large pushes"] = (
        "kept (--keep-page-cache)"
        if args.keep_page_cache
        else "synced and dropped"
        if os.access(DROP_CACHES, os.W_OK)
        else "synced (dropping needs root)"
    )
    print("semreg benchmarks (127.0.0.1 only)")
    for key, value in info.items():
        print(f"  {key}: {value}")
    report = Report()
    parent = args.workdir or Path(tempfile.gettempdir())
    plans: list[Callable[[Path], Target]] = []
    if not args.no_sqlite:
        plans.append(lambda d: SemregTarget(d, "sqlite", workers=args.workers))
    if args.postgres:
        url = args.postgres
        plans.append(lambda d: SemregTarget(d, "postgresql", url, workers=args.workers))
    if not args.no_compare:
        if not DockerRegistryTarget.available():
            ok, why = ensure_debian_package(DOCKER_REGISTRY, "docker-registry", not args.no_install)
            if not ok:
                report.note(f"docker-registry comparison skipped: {why}")
        if DockerRegistryTarget.available():
            info["docker-registry"] = DockerRegistryTarget.version()
            plans.append(lambda d: DockerRegistryTarget(d))
    if not manifests.wrk_available() and (
        not args.only or "manifests" in args.only or "table" in args.only
    ):
        ok, why = ensure_debian_package("wrk", "wrk", not args.no_install)
        if not ok:
            report.note(f"wrk figures skipped: {why}")
    started = time.perf_counter()
    for plan in plans:
        workdir = Path(tempfile.mkdtemp(prefix="semreg-bench-", dir=parent))
        try:
            run_target(plan(workdir), args, report)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if "table" in (args.only or FIGURES):
        workdir = Path(tempfile.mkdtemp(prefix="semreg-bench-", dir=parent))
        try:
            compare.bench_floor(args, report, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nResults ({time.perf_counter() - started:.0f} s, load average now {loadavg()}):\n")
    if report.has("figures"):
        print(report.table())
    if report.has("cpu"):
        print(
            "\nWhere the CPU went (server CPU per unit; shares of the machine during the figure):\n"
        )
        print(report.table("cpu"))
    if report.has(compare.SECTION):
        print("\nThe table of issue 10 (same run, same client; ratio: semreg / docker-registry):\n")
        print(compare.render(report))
    for note in report.notes:
        print(f"note: {note}")
    if args.json:
        report.write_json(args.json, info)
    failed = any(
        "failed" in n or "could not start" in n or compare.WRONG in n for n in report.notes
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
