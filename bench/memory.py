"""Peak resident memory of the server while it receives and serves a large blob (2 GiB).

A thread samples the server process's RSS (plus its children: with ``--workers N``, uvicorn's
supervisor, the N workers and multiprocessing's resource tracker) with psutil every 50 ms during
each phase: a monolithic push (``POST ?digest=`` where supported, else POST + PUT), a chunked
push (PATCH chunks) and a pull of the pushed blob. The budget is 150 MB (150 * 10^6 bytes) for
the whole tree; with several workers the largest single process is reported as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench import blobs
from bench.content import BlobSource
from bench.resources import RssSampler, rss_bytes, settle_page_cache

BUDGET_BYTES = 150 * 1000 * 1000


@dataclass
class Phase:
    name: str
    how: str
    peak: int  # the server's process tree together
    samples: int
    seconds: float
    peak_process: int = 0  # its largest single process
    processes: int = 1


@dataclass
class MemoryFigures:
    baseline: int
    phases: list[Phase]

    @property
    def peak(self) -> int:
        return max(p.peak for p in self.phases)

    @property
    def peak_process(self) -> int:
        return max(p.peak_process for p in self.phases)

    @property
    def processes(self) -> int:
        return max(p.processes for p in self.phases)


def run(
    base_url: str,
    pid: int,
    repo: str,
    size: int,
    chunk: int,
    headers: dict[str, str],
    drop_caches: bool,
) -> MemoryFigures:
    """Push a ``size``-byte blob twice (monolithic, chunked) and pull it, sampling RSS."""
    timeout = httpx.Timeout(600, connect=10)
    phases = []
    with httpx.Client(base_url=base_url, timeout=timeout, headers=headers) as client:
        monolithic, chunked = BlobSource(size), BlobSource(size)
        monolithic.digest, chunked.digest  # noqa: B018  (hash before sampling starts)
        baseline = rss_bytes(pid)
        steps: list[tuple[str, str, Callable[[], object]]] = []
        if blobs.supports_post_digest(client, repo):
            steps.append(
                (
                    "monolithic push",
                    "POST ?digest=",
                    lambda: blobs.push_post_digest(client, repo, monolithic),
                )
            )
        else:
            steps.append(
                (
                    "monolithic push",
                    "POST + PUT",
                    lambda: blobs.push_post_put(client, repo, monolithic),
                )
            )
        steps.append(
            (
                "chunked push",
                f"PATCH {chunk >> 20} MiB",
                lambda: blobs.push_chunked(client, repo, chunked, chunk),
            )
        )
        steps.append(("pull", "GET", lambda: blobs.pull(client, repo, chunked.digest, size)))
        for name, how, step in steps:
            if name != "pull":  # the pull reads the blob just pushed, from the page cache
                settle_page_cache(drop_caches)
            started = time.perf_counter()
            with RssSampler(pid) as sampler:
                step()
            seconds = time.perf_counter() - started
            phases.append(
                Phase(
                    name,
                    how,
                    sampler.peak,
                    sampler.samples,
                    seconds,
                    sampler.peak_process,
                    sampler.processes,
                )
            )
    return MemoryFigures(baseline, phases)
