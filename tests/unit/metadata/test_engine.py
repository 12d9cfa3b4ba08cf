"""SQLite engine setup: WAL mode even when several processes open a new file at once."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from semreg.metadata.engine import Database, create_engine
from semreg.metadata.migrate import upgrade


async def _pragmas(url: str) -> tuple[str, int, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
            busy = (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one()
            keys = (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await engine.dispose()
    return mode, busy, keys


def test_a_new_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'semreg.db'}"
    # Statements run on the event loop without waiting (busy timeout 0); one that finds the
    # database busy is finished in a thread (the test below).
    assert asyncio.run(_pragmas(url)) == ("wal", 0, 1)


def test_a_writer_waits_for_another_process_without_blocking_the_event_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "semreg.db"
    url = f"sqlite+aiosqlite:///{path}"
    insert = (
        "INSERT INTO feeds (name, feed_type, active, created_at) "
        "VALUES ('{}', 'docker', 1, '2026-01-01 00:00:00')"
    )

    async def run() -> tuple[int, float, float]:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            database = Database(engine)
            # Another connection (as another process would) holds the write lock for 0.6 s,
            # released from a thread of its own: not by this event loop.
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            holder.execute(insert.format("held"))
            threading.Timer(0.6, holder.commit).start()
            stamps: list[float] = []

            async def tick() -> None:
                for _ in range(50):
                    stamps.append(time.monotonic())
                    await asyncio.sleep(0.02)

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.05)  # the ticker is running before the writer asks
            started = time.monotonic()
            async with database.write() as conn:
                await conn.execute(sa.text(insert.format("waited")))
            waited = time.monotonic() - started
            await ticker
            async with database.read() as conn:
                count = (await conn.execute(sa.text("SELECT count(*) FROM feeds"))).scalar_one()
            holder.close()
            gaps = [b - a for a, b in itertools.pairwise(stamps)]
            return int(count), waited, max(gaps)
        finally:
            await engine.dispose()

    count, waited, longest_gap = asyncio.run(run())
    assert count == 2  # both rows: the held one committed first, then ours
    assert waited >= 0.4  # the writer did wait for the lock...
    assert longest_gap < 0.2  # ...while the event loop went on (a blocked loop: >= 0.4 s)


async def _mode(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one())


def _open_and_migrate(url: str, start: Any, results: Any) -> None:
    start.wait()
    try:

        async def run() -> str:
            engine = create_engine(url)
            try:
                await upgrade(engine)
                return await _mode(engine)
            finally:
                await engine.dispose()

        results.put(asyncio.run(run()))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on what arrives
        results.put(repr(exc))


def test_processes_starting_together_on_a_new_file_all_get_wal(tmp_path: Path) -> None:
    # Processes started together (serve --workers N) switch a new file to WAL at the same
    # instant: SQLite answers the loser "database is locked" at once, without waiting, so the
    # engine must retry (without the retry, one run of this test in three failed).
    context = multiprocessing.get_context("fork")
    for attempt in range(16):
        url = f"sqlite+aiosqlite:///{tmp_path / f'process-{attempt}.db'}"
        start, results = context.Barrier(4), context.Queue()
        processes = [
            context.Process(target=_open_and_migrate, args=(url, start, results)) for _ in range(4)
        ]
        for process in processes:
            process.start()
        outcomes = sorted(results.get(timeout=60) for _ in processes)
        for process in processes:
            process.join(timeout=60)
        assert outcomes == ["wal"] * 4
