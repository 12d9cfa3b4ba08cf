"""Metadata tests: real SQL on a temp-file SQLite, and on PostgreSQL when
``SEMREG_TEST_DATABASE_URL`` is set (a throw-away database per use)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.server import PG_ADMIN_URL, PostgresDatabase

BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database on ``backend``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'semreg.db'}"
        return
    database = PostgresDatabase()
    try:
        yield database.url
    finally:
        database.drop()
