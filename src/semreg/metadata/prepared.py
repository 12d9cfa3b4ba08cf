"""Statements compiled once and run on the driver, inside the caller's SQLAlchemy transaction.

A push runs a dozen small statements. Through SQLAlchemy each costs more Python than the
database spends on it (building the construct, its cache key, parameter and result
processing); here a Core statement is built once per dialect, compiled once, and its SQL runs
on the transaction's own driver connection (``sqlite_inline`` or asyncpg), with SQLAlchemy's
own bind processors for the parameters, so values are stored exactly as SQLAlchemy would
store them, and its result processors for the columns a statement returns (JSON, datetimes).

Imports: sqlalchemy, stdlib.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

Row = tuple[Any, ...]
_DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.asyncpg.dialect(),  # type: ignore[no-untyped-call]
}
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def param(column: sa.Column[Any], name: str | None = None) -> sa.BindParameter[Any]:
    """A named parameter with ``column``'s type (so its bind processor applies)."""
    return sa.bindparam(name or column.name, type_=column.type)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]
    defaults: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]
    results: tuple[Callable[[Any], Any] | None, ...]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        out = []
        for name in self.order:
            if name in values:
                value = values[name]
            elif self.defaults.get(name) is not None:  # a literal of the statement (LIMIT 1)
                value = self.defaults[name]
            else:
                raise KeyError(f"no value for the statement's parameter {name!r}")
            processor = self.processors.get(name)
            # Called for None too, as SQLAlchemy does (a JSON column stores 'null' for None).
            out.append(processor(value) if processor is not None else value)
        return out


class Prepared:
    """One statement, built by ``build(insert)`` (``insert`` is the dialect's ``insert``)."""

    def __init__(self, build: Callable[[Callable[[sa.Table], Any]], sa.ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect_name: str) -> _Compiled:
        found = self._compiled.get(dialect_name)
        if found is None:
            dialect = _DIALECTS[dialect_name]
            compiled = self._build(_INSERTS[dialect_name]).compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            results = tuple(
                column.type._cached_result_processor(dialect, None)
                for column in getattr(compiled.statement, "selected_columns", ())
            )
            found = _Compiled(
                str(compiled),
                tuple(compiled.positiontup or ()),
                dict(compiled.params),
                # SQLAlchemy's own, per parameter (sequences are for tuple types: none here)
                {k: v for k, v in compiled._bind_processors.items() if callable(v)},
                results if any(results) else (),
            )
            self._compiled[dialect_name] = found
        return found

    async def _call(self, conn: AsyncConnection, values: Mapping[str, Any], fetch: bool) -> Any:
        """Run on the driver: the rows (``fetch``) or the number of rows changed."""
        compiled = self._for(conn.dialect.name)
        driver = await _driver(conn)
        args = compiled.args(values)
        try:
            if conn.dialect.name == "sqlite":
                cursor = await driver.execute(compiled.sql, args)
                return await cursor.fetchall() if fetch else int(cursor.rowcount)
            if fetch:
                return await driver.fetch(compiled.sql, *args)
            status: str = await driver.execute(compiled.sql, *args)
        except _driver_errors(conn) as error:
            raise _translated(compiled.sql, args, error) from error
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    async def rows(self, conn: AsyncConnection, **values: Any) -> list[Row]:
        """The rows the statement returns."""
        found = [tuple(row) for row in await self._call(conn, values, fetch=True)]
        results = self._for(conn.dialect.name).results
        if not results:
            return found
        return [
            tuple(
                value if process is None or value is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in found
        ]

    async def first(self, conn: AsyncConnection, **values: Any) -> Row | None:
        found = await self.rows(conn, **values)
        return found[0] if found else None

    async def scalar(self, conn: AsyncConnection, **values: Any) -> Any:
        """The first column of the first row, or None."""
        row = await self.first(conn, **values)
        return row[0] if row is not None else None

    async def execute(self, conn: AsyncConnection, **values: Any) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        changed: int = await self._call(conn, values, fetch=False)
        return changed

    async def execute_many(
        self, conn: AsyncConnection, values: Sequence[Mapping[str, Any]]
    ) -> None:
        compiled = self._for(conn.dialect.name)
        driver = await _driver(conn)
        rows = [compiled.args(v) for v in values]
        try:
            if conn.dialect.name == "sqlite":
                async with driver.cursor() as inline:
                    await inline.executemany(compiled.sql, rows)
                return
            await driver.executemany(compiled.sql, rows)
        except _driver_errors(conn) as error:
            raise _translated(compiled.sql, rows, error) from error


def _driver_errors(conn: AsyncConnection) -> tuple[type[Exception], ...]:
    if conn.dialect.name == "sqlite":
        return (sqlite3.Error,)
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError)


def _translated(sql: str, args: Any, error: Exception) -> sa.exc.DBAPIError:
    """The SQLAlchemy error the same failure raises through the engine (callers catch those:
    a full disk becomes 507 in ``engine.Database``)."""
    integrity = isinstance(error, sqlite3.IntegrityError) or (
        str(getattr(error, "sqlstate", "") or "").startswith("23")  # PostgreSQL's class 23
    )
    kind = sa.exc.IntegrityError if integrity else sa.exc.OperationalError
    return kind(sql, args, error)


async def _driver(conn: AsyncConnection) -> Any:
    """The driver connection under ``conn``, inside the transaction SQLAlchemy began on it.

    asyncpg's adapter opens its transaction at the first statement it runs: a statement sent
    straight to the driver before that would run outside the transaction, so it is opened here.
    """
    pooled = conn.sync_connection.connection if conn.sync_connection is not None else None
    if pooled is None:
        raise sa.exc.ResourceClosedError("the connection is closed")
    adapter = pooled.dbapi_connection
    if (
        conn.dialect.name == "postgresql" and conn.in_transaction() and adapter._transaction is None  # type: ignore[union-attr]
    ):
        await adapter._start_transaction()  # type: ignore[union-attr]
    return pooled.driver_connection
