"""SQLite statements run on the event loop's own thread, for SQLAlchemy's aiosqlite dialect.

aiosqlite runs every statement in a thread of its own and hands each one over through a queue
and a future: on this project's small indexed statements that hand-off cost several times the
statement itself (most of a manifest PUT's CPU). This connection has aiosqlite's interface but
calls ``sqlite3`` directly, so SQLAlchemy's asyncio engine works unchanged on top of it.

Running a statement inline must never make the event loop wait for another process: WAL
readers never wait for the writer, and a writer that holds the write lock waits for no one.
What can wait is taking the lock (``BEGIN IMMEDIATE`` while another process writes) and, rarely,
opening a read (while another connection recovers the WAL index). So every statement first
runs with a busy timeout of zero; one that finds the database busy runs again in a worker
thread with the full busy timeout. A busy statement has had no effect, so running it again
is safe (a transaction's statements, and single statements in autocommit mode). The WAL's
automatic checkpoint still runs in the ``COMMIT`` that crosses 1,000 pages, on the loop: a few
milliseconds every few hundred pushes. Imports: stdlib.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Self


def _busy(error: sqlite3.OperationalError) -> bool:
    # Not SQLITE_BUSY_SNAPSHOT: a stale read snapshot does not get better by waiting.
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or (
        "database is locked" in str(error)
    )


class _Immediately:
    """Stands for aiosqlite's request queue: SQLAlchemy sets the isolation level through it."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except sqlite3.Error as error:
            future.set_exception(error)


class InlineCursor:
    def __init__(self, connection: InlineConnection) -> None:
        self._owner = connection
        self._cursor = connection._conn.cursor()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Self:
        await self._owner.run(self._cursor.execute, operation, parameters)
        return self

    async def executemany(self, operation: str, parameters: Sequence[Sequence[Any]]) -> Self:
        # Never run again on busy: outside a transaction the rows before the busy one would
        # be in already. (This project runs it only inside its write transactions.)
        self._cursor.executemany(operation, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _CursorContext:
    """What aiosqlite's ``Connection.cursor()`` returns: awaited through ``__aenter__``."""

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection

    async def __aenter__(self) -> InlineCursor:
        return InlineCursor(self._connection)

    async def __aexit__(self, *_exc: object) -> None:
        return None


class InlineConnection:
    """An aiosqlite-compatible connection whose statements run on the calling thread."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        # check_same_thread off: a busy statement is finished in a worker thread, while the
        # coroutine that owns the connection waits for it (never two threads at once).
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn.execute("PRAGMA busy_timeout=0")
        # aiosqlite's "is open" attribute, read by SQLAlchemy
        self._connection: sqlite3.Connection | None = self._conn
        self._tx = _Immediately()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def run(self, statement: Callable[..., Any], *args: Any) -> Any:
        try:
            return statement(*args)
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        waiting = asyncio.ensure_future(asyncio.to_thread(self._patiently, statement, *args))
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread still has the connection: let it finish before anyone (SQLAlchemy's
            # rollback on cancellation) uses the connection again.
            await asyncio.wait([waiting])
            raise

    def _patiently(self, statement: Callable[..., Any], *args: Any) -> Any:
        self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            return statement(*args)
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")

    def cursor(self) -> _CursorContext:
        return _CursorContext(self)

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        cursor = InlineCursor(self)
        return await cursor.execute(operation, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await self.run(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._conn.close()
        self._connection = None  # what SQLAlchemy checks before commit and rollback


def inline_creator(path: str, busy_timeout_ms: int) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening inline connections to ``path``."""

    async def create() -> InlineConnection:
        return InlineConnection(path, busy_timeout_ms)

    return create
