"""Container Versioning at scale: manifest PUT/s into a repository of 100 and of 10,000 releases.

In one feed with Container Versioning on, repository A is filled with 100 releases and
repository B with 10,000 (``small`` and ``large``), by the same client that measures: distinct
small manifests sharing one config and one layer blob, each pushed by its release tag, 8
concurrent workers. The releases are spread over 5 majors and 4 minors each (``version``), so
``latest``, ``1``-``5`` and ``N.0``-``N.3`` all exist and every push re-points some of them.
B is filled in blocks of 1,000 (each block with a fresh token: tokens live 5 minutes) and the
rate of every block is kept: the fill-time curve.

Then the same number of new releases (``count`` or ``seconds``, whichever ends first) is pushed
into A and into B. Each new release is the highest of its ``N.M`` and ``N``, one in five also
of ``latest``: the same virtual-tag work in both repositories. The figure is the two rates and
their ratio (large / small), which should be close to 1 if a push does not cost more in a
larger repository. A grows to at most ``small + count`` releases during its measurement, B to
``large + count``: two orders of magnitude apart throughout.

At the end ``latest``, a major and a major.minor tag of each repository are checked against
the highest release pushed, so a figure cannot come from a registry that got them wrong.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from tests.factories import OCI_MANIFEST

from bench.content import manifest, manifest_blobs
from bench.manifests import Rate, push_blob, put_many

MAJORS = 5
MINORS = 4
BLOCK = 1000


def version(n: int) -> str:
    """The ``n``-th release: majors 1-5 and minors 0-3 in turn, the patch rising every 20."""
    return f"{1 + n % MAJORS}.{(n // MAJORS) % MINORS}.{n // (MAJORS * MINORS)}"


def _key(n: int) -> tuple[int, ...]:
    return tuple(int(part) for part in version(n).split("."))


@dataclass
class Fill:
    """Filling a repository with ``wanted`` releases: ``pushed`` of them in ``seconds``."""

    wanted: int
    pushed: int = 0
    seconds: float = 0.0
    # PUT/s of each block of up to ``BLOCK`` releases, in push order: the fill-time curve.
    blocks: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.pushed / self.seconds if self.seconds else 0.0


@dataclass
class ScaleFigures:
    small_fill: Fill
    large_fill: Fill
    small: Rate
    large: Rate

    @property
    def ratio(self) -> float:
        return self.large.per_second / self.small.per_second


HeadersFor = Callable[[str], dict[str, str]]


class _Repository:
    """One versioned repository being filled and measured; ``count``: releases pushed so far."""

    def __init__(self, base_url: str, pid: int, name: str, headers_for: HeadersFor) -> None:
        self.base_url = base_url
        self.pid = pid
        self.name = name
        self.headers_for = headers_for
        self.count = 0
        self.config, self.layer = manifest_blobs(name)
        with httpx.Client(base_url=base_url, timeout=60, headers=headers_for(name)) as client:
            push_blob(client, name, self.config)
            push_blob(client, name, self.layer)

    def push(self, count: int, workers: int, seconds: float) -> Rate:
        """Push the next ``count`` releases (or for ``seconds``) with ``workers`` clients."""
        numbers = range(self.count, self.count + count)
        bodies = [manifest(self.config, self.layer, n) for n in numbers]
        tags = [version(n) for n in numbers]
        rate = put_many(
            self.base_url,
            self.pid,
            self.name,
            self.headers_for(self.name),
            bodies,
            tags,
            workers,
            seconds,
        )
        # Workers hand out numbers in order and stop together, so exactly the first
        # ``rate.count`` of them were pushed (a failed PUT raises).
        self.count += rate.count
        return rate

    def fill(self, wanted: int, workers: int, deadline: float) -> Fill:
        """Push releases until ``wanted`` are there or the ``deadline`` (perf_counter) passes."""
        result = Fill(wanted)
        while self.count < wanted and time.perf_counter() < deadline:
            block = min(BLOCK, wanted - self.count)
            rate = self.push(block, workers, deadline - time.perf_counter())
            result.pushed += rate.count
            result.seconds += rate.seconds
            result.blocks.append(rate.per_second)
        return result

    def check_virtual_tags(self) -> None:
        """``latest``, the top major and its top minor name the highest release pushed."""
        top = max(range(self.count), key=_key)
        major, minor, _ = _key(top)
        expected = f"sha256:{hashlib.sha256(manifest(self.config, self.layer, top)).hexdigest()}"
        headers = {**self.headers_for(self.name), "Accept": OCI_MANIFEST}
        with httpx.Client(base_url=self.base_url, timeout=60, headers=headers) as client:
            for tag in ("latest", str(major), f"{major}.{minor}"):
                response = client.head(f"/v2/{self.name}/manifests/{tag}")
                got = response.headers.get("docker-content-digest")
                if response.status_code != 200 or got != expected:
                    raise RuntimeError(
                        f"{self.name}:{tag} after {self.count} releases: "
                        f"{response.status_code} {got}, expected {expected} ({version(top)})"
                    )


def run(
    base_url: str,
    pid: int,
    small_repo: str,
    large_repo: str,
    headers_for: HeadersFor,
    small: int,
    large: int,
    count: int,
    workers: int,
    seconds: float,
    fill_seconds: float,
    vacuum: Callable[[], str] = lambda: "",
    progress: Callable[[str], None] = print,
) -> ScaleFigures:
    """Fill ``small_repo`` with ``small`` and ``large_repo`` with ``large`` releases (both
    within ``fill_seconds``), then measure PUT/s of ``count`` new releases (or ``seconds``)
    into each. ``vacuum`` (the database's routine maintenance) runs before each."""
    a = _Repository(base_url, pid, small_repo, headers_for)
    b = _Repository(base_url, pid, large_repo, headers_for)
    deadline = time.perf_counter() + fill_seconds
    small_fill = a.fill(small, workers, deadline)
    progress(f"    filled {small_repo}: {small_fill.pushed} releases in {small_fill.seconds:.1f} s")
    large_fill = b.fill(large, workers, deadline)
    progress(f"    filled {large_repo}: {large_fill.pushed} releases in {large_fill.seconds:.1f} s")
    # Each measurement starts from a maintained database, as it would under autovacuum.
    done = vacuum()
    small_rate = a.push(count, workers, seconds)
    vacuum()
    large_rate = b.push(count, workers, seconds)
    if done:
        progress(f"    {done} before each measurement")
    a.check_virtual_tags()
    b.check_virtual_tags()
    return ScaleFigures(small_fill, large_fill, small_rate, large_rate)
