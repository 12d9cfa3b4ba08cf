"""Manifest PUT/s and manifest GET requests/s.

PUT: many small distinct manifests (they differ by one annotation), each by its own tag
``1.0.<n>``, all referencing the same config and layer blobs pushed once beforehand; ``put_workers``
concurrent clients (httpx.AsyncClient) over one repository, bounded by a count and a duration.

GET: the same manifest by tag, with an OCI Accept header, from ``get_connections`` concurrent
connections. Two load generators: httpx.AsyncClient (a Python client, itself CPU-bound) and
``wrk`` when it is installed (C, far cheaper per request). Both are bounded by a count and a
duration; a non-200 answer fails the figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.factories import OCI_MANIFEST

from bench.content import manifest, manifest_blobs
from bench.resources import CpuMeter, CpuUse


@dataclass
class Rate:
    """``count`` requests in ``seconds``, with latency percentiles in milliseconds."""

    count: int
    seconds: float
    p50_ms: float
    p99_ms: float
    generator: str
    connections: int
    notes: list[str] = field(default_factory=list)
    cpu: CpuUse | None = None
    # Rates over the first and the last quarter of the requests: does the cost grow?
    quarters: tuple[float, float] | None = None

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def push_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    """A small blob by POST then PUT (the form every registry supports)."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    response = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    if response.status_code != 202:
        raise RuntimeError(f"POST upload: {response.status_code} {response.text}")
    location = httpx.URL(response.headers["location"]).copy_merge_params({"digest": digest})
    response = client.put(
        location,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"PUT upload: {response.status_code} {response.text}")


async def _put_all(
    base_url: str,
    repo: str,
    headers: dict[str, str],
    bodies: list[bytes],
    workers: int,
    seconds: float,
    tags: list[str] | None = None,
) -> Rate:
    """PUT ``bodies[n]`` by ``tags[n]`` (default ``1.0.<n>``) until all are sent or time is up."""
    limit = len(bodies)
    tags = tags or [f"1.0.{n}" for n in range(limit)]
    latencies: list[float] = []
    finished: list[float] = []
    next_number = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_number
        while next_number < limit and time.perf_counter() < deadline:
            number = next_number
            next_number += 1
            started = time.perf_counter()
            response = await client.put(
                f"/v2/{repo}/manifests/{tags[number]}",
                content=bodies[number],
                headers={"Content-Type": OCI_MANIFEST},
            )
            finished.append(time.perf_counter())
            latencies.append(finished[-1] - started)
            if response.status_code != 201:
                raise RuntimeError(
                    f"PUT manifest {tags[number]}: {response.status_code} {response.text}"
                )

    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=limits, headers=headers
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(workers)))
        elapsed = time.perf_counter() - started
    quarter = len(finished) // 4
    quarters = None
    if quarter >= 10:
        first = quarter / (finished[quarter - 1] - started)
        last = quarter / (finished[-1] - finished[-quarter - 1])
        quarters = (first, last)
    return Rate(
        len(latencies),
        elapsed,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        "httpx.AsyncClient",
        workers,
        quarters=quarters,
    )


def run_put(
    base_url: str,
    pid: int,
    repo: str,
    headers: dict[str, str],
    workers: int,
    limit: int,
    seconds: float,
) -> tuple[Rate, str]:
    """PUT up to ``limit`` manifests (or for ``seconds``); returns the rate and a tag to GET."""
    config, layer = manifest_blobs(repo)
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as client:
        push_blob(client, repo, config)
        push_blob(client, repo, layer)
    bodies = [manifest(config, layer, n) for n in range(limit)]
    rate = put_many(base_url, pid, repo, headers, bodies, None, workers, seconds)
    return rate, "1.0.0"


def put_many(
    base_url: str,
    pid: int,
    repo: str,
    headers: dict[str, str],
    bodies: list[bytes],
    tags: list[str] | None,
    workers: int,
    seconds: float,
) -> Rate:
    """PUT ``bodies`` by ``tags`` (default ``1.0.<n>``) with ``workers`` clients, metered.

    The blobs the manifests reference must be in ``repo`` already.
    """
    with CpuMeter(pid) as meter:
        rate = asyncio.run(_put_all(base_url, repo, headers, bodies, workers, seconds, tags))
    rate.cpu = meter.use
    return rate


async def _get_all(
    url: str, headers: dict[str, str], connections: int, limit: int, seconds: float
) -> Rate:
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {**headers, "Accept": OCI_MANIFEST}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < limit and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"GET manifest: {response.status_code} {response.text}")

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(20):  # warm-up: connections, caches
            (await client.get(url, headers=headers)).raise_for_status()
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return Rate(
        len(latencies),
        elapsed,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        "httpx.AsyncClient",
        connections,
    )


def run_get_python(
    url: str, pid: int, headers: dict[str, str], connections: int, limit: int, seconds: float
) -> Rate:
    with CpuMeter(pid) as meter:
        rate = asyncio.run(_get_all(url, headers, connections, limit, seconds))
    rate.cpu = meter.use
    return rate


# Every answer goes through ``response``: wrk itself only counts answers of 400 and more as
# errors ("Non-2xx or 3xx responses"), so a 3xx (a redirect instead of the manifest) would pass.
# ``bad`` is global so that ``done`` (in wrk's main Lua state) can read it from each thread.
_WRK_SCRIPT = """\
wrk.method = "GET"
wrk.headers["Accept"] = "ACCEPT"
HEADERS
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
limit = 0
count = 0
bad = 0
function init(args)
  limit = tonumber(args[1]) or 0
end
function response(status, headers, body)
  count = count + 1
  if status < 200 or status > 299 then bad = bad + 1 end
  if limit > 0 and count >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write(string.format("Non-2xx answers: %d\\n", total))
end
""".replace("ACCEPT", OCI_MANIFEST)

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)] * 1000


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_get_wrk(
    url: str,
    pid: int,
    headers: dict[str, str],
    connections: int,
    threads: int,
    limit: int | None,
    seconds: float,
) -> Rate:
    """``wrk`` for ``seconds``; a thread stops early after ``limit / threads`` answers.

    wrk divides by its full ``-d`` duration even when threads stop early, so ``limit`` is a safety
    cap only: reaching it is reported, since the rate is then understated. ``None``: no cap.
    Raises RuntimeError when any answer was not a 2xx.
    """
    with tempfile.TemporaryDirectory(prefix="semreg-bench-wrk-") as tmp:
        script = Path(tmp) / "manifest.lua"
        extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script.write_text(_WRK_SCRIPT.replace("HEADERS", extra))
        per_thread = max(1, limit // threads) if limit else 0
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
        command += ["-s", str(script), url, "--", str(per_thread)]
        with CpuMeter(pid) as meter:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=seconds + 60, check=False
            )
    out = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or out}")
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if total is None:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    count = int(total.group(1))
    elapsed = _wrk_ms(total.group(2) + total.group(3)) / 1000
    notes = []
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad is not None:
        raise RuntimeError(f"wrk: {bad.group(1)} of {count} answers were not 2xx/3xx")
    counted = re.search(r"Non-2xx answers: (\d+)", out)
    if counted is None:
        raise RuntimeError(f"wrk: the script's count of non-2xx answers is missing:\n{out}")
    if int(counted.group(1)):
        raise RuntimeError(f"wrk: {counted.group(1)} of {count} answers were not 2xx")
    if per_thread and count >= per_thread * threads:
        notes.append("request cap reached before the duration: the rate is understated")
    errors = re.search(r"Socket errors: (.*)", out)
    if errors is not None:
        notes.append(f"wrk socket errors: {errors.group(1)}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    return Rate(
        count,
        elapsed,
        _wrk_ms(p50.group(1)) if p50 else float("nan"),
        _wrk_ms(p99.group(1)) if p99 else float("nan"),
        f"wrk -t{threads}",
        connections,
        notes,
        meter.use,
    )
