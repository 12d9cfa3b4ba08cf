"""The registries under test: semreg (SQLite or PostgreSQL) and the CNCF reference registry.

Each target starts its own server on 127.0.0.1 with a throw-away data folder (and database) and
stops it again. ``repository(name)`` gives the repository name a benchmark pushes to: semreg's
names start with a feed, the reference registry has no feeds.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from tests import server as test_server
from tests.server import PostgresDatabase, ServerProcess, free_port

from bench.floor import DIGEST as FLOOR_DIGEST
from bench.resources import worker_pids

DOCKER_REGISTRY = "/usr/bin/docker-registry"


class Target:
    """A registry server started for one benchmark run."""

    label = ""
    has_feeds = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def start(self) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def fresh(self) -> None:
        """Stop the server and start a new one on empty data (a new folder, a new database)."""
        self.stop()
        self.workdir = Path(tempfile.mkdtemp(prefix="fresh-", dir=self.workdir))
        self.start()

    def repository(self, name: str, versioning: bool = False) -> str:
        """A repository name to push to (semreg: in a new feed, with Container Versioning on
        when ``versioning``)."""
        return name

    def vacuum(self) -> str:
        """Do what a database's routine maintenance would have done by now; say what was done."""
        return ""

    @property
    def credentials(self) -> tuple[str, str] | None:
        """Basic credentials with full control, when the server needs any."""
        return None

    def registry_headers(self, repo: str) -> dict[str, str]:
        """Headers that let a client pull and push ``repo``, got the way Docker clients do.

        ``GET /v2/`` tells whether credentials are needed; a Bearer challenge is answered with a
        token for ``repository:<repo>:pull,push`` from the realm (signed in with Basic), a Basic
        challenge with the credentials themselves. Tokens are short-lived: ask per figure.
        """
        probe = httpx.get(f"{self.url}/v2/", timeout=30)
        if probe.status_code == 200:
            return {}
        challenge = probe.headers.get("www-authenticate", "")
        if probe.status_code != 401 or self.credentials is None:
            raise RuntimeError(f"GET /v2/: {probe.status_code} {challenge!r}")
        scheme, _, params = challenge.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if scheme.lower() == "basic":
            user, secret = self.credentials
            encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {encoded}"}
        if scheme.lower() != "bearer" or "realm" not in fields:
            raise RuntimeError(f"unsupported challenge {challenge!r}")
        query = {"scope": f"repository:{repo}:pull,push"}
        if "service" in fields:
            query["service"] = fields["service"]
        answer = httpx.get(fields["realm"], params=query, auth=self.credentials, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"token request: {answer.status_code} {answer.text}")
        body = answer.json()
        return {"Authorization": f"Bearer {body.get('token') or body['access_token']}"}

    def log_tail(self) -> str:
        return ""


def wait_for_startups(log: Callable[[], str], workers: int, tail: Callable[[], str]) -> None:
    """Wait until ``workers`` uvicorn workers have started their app (the first answers sooner)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log().count("Application startup complete") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{workers} workers did not start: {tail()}")


class SemregTarget(Target):
    """``semreg serve [--workers N]`` through tests.server.ServerProcess (access log off).

    ``workers`` None: no ``--workers``, semreg's default. With several workers uvicorn's
    supervisor process starts them (its children) and they share the database and the blob
    folder; ``pid`` is the supervisor's, and the resource figures count it together with all its
    children. How many serve is read from the process tree (``worker_pids``).
    """

    has_feeds = True

    def __init__(
        self,
        workdir: Path,
        backend: str = "sqlite",
        pg_admin_url: str = "",
        workers: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.backend = backend
        self.pg_admin_url = pg_admin_url
        self.workers = workers
        self.env = env or {}  # extra server environment (SEMREG_...)
        if workers is None:
            self.label = f"semreg ({backend})"
        else:
            self.label = f"semreg ({backend}, {workers} worker{'s' if workers > 1 else ''})"
        self.database: PostgresDatabase | None = None
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server is not None
        assert self.server.process is not None
        return self.server.process.pid

    def start(self) -> SemregTarget:
        database_url = ""
        if self.backend == "postgresql":
            # PostgresDatabase reads the admin URL from this module global.
            test_server.PG_ADMIN_URL = self.pg_admin_url
            self.database = PostgresDatabase()
            database_url = self.database.url
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = ("--workers", str(self.workers)) if self.workers is not None else ()
        self.server = ServerProcess(data, database_url, args=args, **self.env).start()
        # uvicorn's supervisor has started every worker by the time the first one answers.
        workers = len(worker_pids(self.pid))
        if workers > 1:
            wait_for_startups(self.server.log, workers, self.log_tail)
        return self

    def vacuum(self) -> str:
        """``VACUUM ANALYZE`` the PostgreSQL database (SQLite needs nothing of the kind).

        A server with autovacuum on (the default) does this by itself once enough rows changed;
        the PostgreSQL of the benchmark machine runs with autovacuum off, so without this a
        figure would pay for the dead row versions of the pushes before it.
        """
        if self.database is None:
            return ""
        self.database.execute("VACUUM ANALYZE")
        return "VACUUM ANALYZE"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.database is not None:
            self.database.drop()
            self.database = None

    @property
    def credentials(self) -> tuple[str, str] | None:
        # ServerProcess registers a full-control API key when the server has authentication.
        auth: tuple[str, str] | None = getattr(self.server, "auth", None)
        return auth

    def repository(self, name: str, versioning: bool = False) -> str:
        feed = f"bench-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{self.url}/api/management/feeds/create",
            json={"name": feed, "feedType": "docker", "containerVersioning": versioning},
            auth=self.credentials,
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"cannot create feed {feed}: {response.status_code} {response.text}")
        return f"{feed}/{name}"

    def log_tail(self) -> str:
        return self.server.log()[-3000:] if self.server is not None else ""


_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
health:
  storagedriver:
    enabled: false
"""


class DockerRegistryTarget(Target):
    """The CNCF reference registry (Debian ``docker-registry``) on filesystem storage, no auth.

    The storage section matches Debian's shipped ``/etc/docker/registry/config.yml`` (in-memory
    blob descriptor cache); logging is reduced to errors, like semreg's access log being off.
    """

    label = "docker-registry"

    def __init__(self, workdir: Path, binary: str = DOCKER_REGISTRY) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "docker-registry.log"

    @staticmethod
    def available(binary: str = DOCKER_REGISTRY) -> bool:
        return os.access(binary, os.X_OK)

    @staticmethod
    def version(binary: str = DOCKER_REGISTRY) -> str:
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return "unknown"
        return out.stdout.strip() or "unknown"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> DockerRegistryTarget:
        root = self.workdir / "storage"
        root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(_REGISTRY_CONFIG.format(root=root, port=self.port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""


FLOOR_APPS = {"asgi_app": "pure ASGI", "starlette_app": "Starlette, one route"}


class FloorTarget(Target):
    """uvicorn serving one of bench.floor's apps the way semreg is served.

    uvloop, httptools, no access log, ``--workers N`` when ``workers`` > 1 (semreg's own
    protocol class, a subclass of uvicorn's httptools one with header limits, and its connection
    limit are not part of the floor). ``app``: a name in ``FLOOR_APPS``.
    """

    def __init__(self, workdir: Path, app: str, workers: int) -> None:
        super().__init__(workdir)
        self.app = app
        self.workers = workers
        self.label = f"{FLOOR_APPS[app]}, {workers} process{'es' if workers > 1 else ''}"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"floor-{app}-{workers}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def manifest_url(self) -> str:
        return f"{self.url}/v2/floor/app/manifests/1.0.0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> FloorTarget:
        command = [sys.executable, "-m", "uvicorn", f"bench.floor:{self.app}"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
        root = Path(__file__).resolve().parent.parent  # bench.floor must be importable
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self.log_tail()}")
            try:
                answer = httpx.get(self.manifest_url, timeout=1)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if answer.headers.get("docker-content-digest") != FLOOR_DIGEST:
                raise RuntimeError(f"the floor app answered {answer.status_code} {answer.headers}")
            wait_for_startups(self.log, self.workers, self.log_tail)
            return self
        self.stop()
        raise RuntimeError(f"the floor app did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # the supervisor stops its workers
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self) -> str:
        return self.log()[-3000:]


def ensure_debian_package(binary: str, package: str, install: bool) -> tuple[bool, str]:
    """Whether ``binary`` exists, installing Debian's ``package`` first when allowed.

    Returns (available, note); the note says what happened when it is not available.
    """
    if shutil.which(binary) or os.access(binary, os.X_OK):
        return True, ""
    if not install:
        return False, f"{binary} is missing (install the Debian package {package!r})"
    apt = shutil.which("apt-get")
    if apt is None:
        return False, f"{binary} is missing and apt-get is not available"
    command = [apt, "install", "-y", "-qq", package]
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return False, f"{binary} is missing and installing {package!r} needs root"
        command = [sudo, "-n", *command]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"  installing Debian package {package!r} for the comparison ...", flush=True)
    for attempt in range(2):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=300, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"installing {package!r} failed: {exc}"
        if done.returncode == 0 and (shutil.which(binary) or os.access(binary, os.X_OK)):
            return True, ""
        if attempt == 0:  # the package lists may be missing or stale: refresh once
            subprocess.run(
                [*command[:-4], "update", "-qq"],
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )
    return False, f"installing {package!r} failed: {done.stderr.strip()[-300:]}"
