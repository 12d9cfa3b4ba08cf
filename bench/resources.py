"""What a figure cost: server RSS sampled every 50 ms, and CPU time split by who spent it.

The server is a process tree: ``semreg serve --workers N`` is uvicorn's supervisor with the N
worker processes (and multiprocessing's resource tracker) as its children, so memory and CPU are
always taken over the process and all its descendants.

``CpuMeter`` tells how much CPU the server, the benchmark client (this process and the children
it waited for, e.g. ``wrk``) and everything else on the machine used while a figure ran. The
"other" share is the honest caveat on a shared machine: figures taken while other work ran
are lower than on an idle machine, while the server's CPU time per request hardly moves.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

INTERVAL = 0.05
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def settle_page_cache(drop: bool) -> bool:
    """Write back dirty pages and, when ``drop`` and allowed (root), drop clean page cache.

    Returns whether the cache was dropped. On the reference VM every GiB written after the first
    two costs twice the kernel time until the page cache is dropped (the guest's fresh memory
    is slow to hand out), so without this a push would pay for the pushes before it.
    """
    os.sync()
    if not drop:
        return False
    try:
        DROP_CACHES.write_text("1")
    except OSError:
        return False
    return True


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def rss_each(pid: int) -> list[int]:
    """Resident memory of a process and of each of its descendants, in bytes ([] once gone).

    With ``semreg serve --workers N`` these are uvicorn's supervisor, multiprocessing's resource
    tracker and the N workers.
    """
    sizes = []
    try:
        for process in _tree(pid):
            try:
                sizes.append(process.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return []
    return sizes


def worker_pids(pid: int) -> list[int]:
    """The processes of the tree that serve requests.

    uvicorn's worker processes when ``pid`` is its supervisor (``--workers N``: children started
    by multiprocessing's spawn, ``spawn_main``; multiprocessing's resource tracker is not one),
    else ``pid`` itself. Read from the process tree, so it holds whatever the server's default.
    """
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    workers = []
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return workers or [pid]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children together, in bytes (0 once it is gone)."""
    return sum(rss_each(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children."""
    total = 0.0
    try:
        for process in _tree(pid):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    except psutil.NoSuchProcess:
        return 0.0
    return total


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


class RssSampler:
    """Samples ``rss_each(pid)`` every ``INTERVAL`` seconds in a thread; keeps the peaks.

    ``peak``: of the process tree together; ``peak_process``: of its largest single process;
    ``processes``: the most processes seen in one sample.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_process = 0
        self.processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = rss_each(self.pid)
            self.peak = max(self.peak, sum(sizes))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            self.processes = max(self.processes, len(sizes))
            self.samples += 1
            self._stop.wait(INTERVAL)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class CpuUse:
    """CPU seconds over ``seconds`` of wall time on ``cores`` cores."""

    seconds: float
    cores: int
    server: float
    client: float
    other: float

    def share(self, cpu: float) -> float:
        return cpu / (self.seconds * self.cores) if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"server {self.share(self.server):.0%}, client {self.share(self.client):.0%}, "
            f"other {self.share(self.other):.0%} of {self.cores} cores"
        )


class CpuMeter:
    """``with CpuMeter(pid) as meter:`` ... then ``meter.use``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.use = CpuUse(0.0, os.cpu_count() or 1, 0.0, 0.0, 0.0)

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), cpu_seconds(self.pid), _own_cpu(), _busy())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, server, client, busy = self._start
        wall = time.perf_counter() - wall
        server = cpu_seconds(self.pid) - server
        client = _own_cpu() - client
        busy = _busy() - busy
        other = max(0.0, busy - server - client)
        self.use = CpuUse(wall, os.cpu_count() or 1, server, client, other)
