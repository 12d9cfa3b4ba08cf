"""SQLite engine setup: WAL mode even when several processes open a new file at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
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

    async def run() -> tuple[int, list[int]]:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            database = Database(engine)
            # Another process's writer holds the write lock for half a second.
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            holder.execute(
                "INSERT INTO feeds (name, feed_type, active, created_at) "
                "VALUES ('held', 'docker', 1, '2026-01-01 00:00:00')"
            )
            loop = asyncio.get_running_loop()
            loop.call_later(0.5, holder.commit)
            ticks: list[int] = []

            async def tick() -> None:
                for n in range(20):
                    ticks.append(n)
                    await asyncio.sleep(0.02)

            async def write() -> int:
                async with database.write() as conn:
                    await conn.execute(
                        sa.text(
                            "INSERT INTO feeds (name, feed_type, active, created_at) "
                            "VALUES ('waited', 'docker', 1, '2026-01-01 00:00:00')"
                        )
                    )
                async with database.read() as conn:
                    found = await conn.execute(sa.text("SELECT count(*) FROM feeds"))
                    return int(found.scalar_one())

            ticker = asyncio.create_task(tick())
            count = await write()
            await ticker
            holder.close()
            return count, ticks
        finally:
            await engine.dispose()

    count, ticks = asyncio.run(run())
    assert count == 2  # both rows: the held one committed first, then ours
    assert ticks == list(range(20))  # the loop kept running while the writer waited


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
