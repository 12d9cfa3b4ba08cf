"""A real ``semreg serve`` process on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("SEMREG_TEST_DATABASE_URL", "")


def semreg_command(coverage: bool = True) -> list[str]:
    """How to run the ``semreg`` CLI in a subprocess (under coverage when the suite measures it
    and ``coverage``: a process that will be killed writes no coverage data, and only starts
    slower)."""
    command = [sys.executable]
    if coverage and os.environ.get("SEMREG_TEST_COVERAGE"):
        command += ["-m", "coverage", "run", "-p"]
    return [*command, "-m", "semreg.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pg(statement: str, url: str = "") -> None:
    """Run one statement on ``url`` (default: the admin database), outside a transaction."""
    import asyncpg

    dsn = (url or PG_ADMIN_URL).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class PostgresDatabase:
    """A throw-away database on the local PostgreSQL server."""

    def __init__(self) -> None:
        self.name = f"semreg_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg(f'CREATE DATABASE "{self.name}"'))
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def execute(self, statement: str) -> None:
        """Run one statement in this database (``VACUUM`` too: not in a transaction)."""
        asyncio.run(_pg(statement, self.url))

    def drop(self) -> None:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


class ServerProcess:
    """``semreg serve`` in a subprocess, under coverage when ``SEMREG_TEST_COVERAGE`` is set."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str = "",
        *,
        args: tuple[str, ...] = (),
        coverage: bool = True,
        **env: str,
    ) -> None:
        self.args = args
        self.coverage = coverage
        self.data_dir = data_dir
        self.database_url = database_url
        self.admin_key = env.pop("admin_key", None) or f"semreg_test-admin-{uuid.uuid4().hex}"
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
        env |= {
            "SEMREG_LOG__LEVEL": "INFO",
            "SEMREG_LOG__ACCESS_LOG": "false",
            "SEMREG_ADMIN_API_KEY": self.admin_key,
        }
        if self.database_url:
            env["SEMREG_DATABASE_URL"] = self.database_url
        env |= self.env
        command = [
            *semreg_command(self.coverage),
            "serve",
            "--data",
            str(self.data_dir),
            *self.args,
        ]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 401:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    @property
    def auth(self) -> tuple[str, str]:
        """HTTP Basic credentials of the full-control key."""
        return ("api", self.admin_key)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
