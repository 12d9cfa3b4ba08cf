"""The async engine and its transactions: SQLite (WAL) or PostgreSQL (asyncpg).

``Database.write()`` serializes writers where needed: SQLite takes the write lock up front with
``BEGIN IMMEDIATE`` (a deferred transaction that upgrades later can fail with SQLITE_BUSY no
busy-timeout can help); PostgreSQL relies on row locks taken by ``repo.lock_repository``.
A write refused because the disk is full or read-only raises ``InsufficientStorage``.
Imports: domain, sqlalchemy, stdlib.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from semreg.domain.errors import InsufficientStorage
from semreg.metadata.hot import HotReads
from semreg.metadata.sqlite_inline import inline_creator

_BUSY_TIMEOUT_SECONDS = 30
_BUSY_MS = _BUSY_TIMEOUT_SECONDS * 1000
_SQLITE_PRAGMAS = (
    # WAL + NORMAL: atomic and consistent; the last commits may be lost on power failure only.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


def _enable_wal(path: str) -> None:
    """Put the database file in WAL mode (a persistent setting), before any pool connects.

    Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at once,
    without waiting, while another process holds it: which happens when several processes
    (``serve --workers N``) start on a new file together. So: retry for a while.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECONDS)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _make_private(path: str) -> None:
    """Create the database file readable by its owner only (it holds password hashes), and
    tighten one an older version created; SQLite gives its -wal and -shm files the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def _configure_sqlite(engine: AsyncEngine, inline: bool) -> None:
    # Inline connections wait for locks themselves (``sqlite_inline``); aiosqlite's threads
    # may simply block.
    pragmas = _SQLITE_PRAGMAS if inline else (f"PRAGMA busy_timeout={_BUSY_MS}", *_SQLITE_PRAGMAS)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling is lazy).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("semreg_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url`` with the per-dialect setup this project relies on."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        options: dict[str, Any] = {}
        inline = bool(path and path != ":memory:" and not path.startswith("file:"))
        if path and inline:
            _make_private(path)
            _enable_wal(path)
            options["async_creator"] = inline_creator(path, _BUSY_MS)
        engine = create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=10, **options
        )
        _configure_sqlite(engine, inline)
        return engine
    # No pre-ping: it costs a round trip per checkout; a dead connection fails its statement.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=10, pool_recycle=1800
    )


def _storage_reason(exc: sa.exc.OperationalError) -> str | None:
    """Why a write failed, when the cause is a full or read-only disk (else None)."""
    text = str(exc.orig).lower()
    if "disk is full" in text or getattr(exc.orig, "sqlstate", None) == "53100":
        return "a full disk"
    if "readonly database" in text or "read-only" in text:
        return "a read-only disk"
    return None


class Database:
    """Read and write transactions over one engine."""

    def __init__(self, engine: AsyncEngine, hot: HotReads | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # The hot-path lookups (``metadata/hot.py``), when the server opened them.
        self.hot = hot
        # SQLite allows one writer; queueing this process's writers here (fairly, in order)
        # spares them SQLite's busy-wait, which sleeps and retries and makes long tails.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self._write_transaction() as conn:
                yield conn
            return
        async with self._write_lock, self._write_transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                await conn.execution_options(semreg_write=True)
                async with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            reason = _storage_reason(exc)
            if reason is None:
                raise
            raise InsufficientStorage(
                f"the registry cannot store data: the database reports {reason}; free space or "
                "make it writable, then retry",
                {"reason": reason},
            ) from exc

    async def dispose(self) -> None:
        if self.hot is not None:
            await self.hot.close()
        await self.engine.dispose()
