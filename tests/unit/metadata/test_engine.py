"""SQLite engine setup: WAL mode even when several processes open a new file at once."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from semreg.metadata.engine import create_engine
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
    assert asyncio.run(_pragmas(url)) == ("wal", 30000, 1)


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
