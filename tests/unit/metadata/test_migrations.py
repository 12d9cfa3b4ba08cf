"""The Alembic migrations build exactly the schema of ``semreg.metadata.schema``, once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql

import semreg.metadata
from semreg.metadata import migrate
from semreg.metadata.engine import create_engine
from semreg.metadata.migrate import upgrade
from semreg.metadata.schema import feeds, metadata
from tests.unit.metadata import BACKENDS, fresh_database


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def head_revision() -> str:
    config = Config()
    config.set_main_option(
        "script_location", str(Path(semreg.metadata.__file__).parent / "migrations")
    )
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def schema_differences(sync: sa.Connection) -> list[Any]:
    """Alembic's autogenerate diff: tables, columns, types, nullability, defaults, indexes,
    unique and foreign keys."""
    context = MigrationContext.configure(
        sync, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def key_differences(sync: sa.Connection) -> list[str]:
    """What autogenerate does not compare: primary keys and (PostgreSQL) column collations."""
    inspector = sa.inspect(sync)
    problems = []
    for table in metadata.sorted_tables:
        expected_pk = [c.name for c in table.primary_key.columns]
        reflected = inspector.get_pk_constraint(table.name)
        if reflected["constrained_columns"] != expected_pk:
            problems.append(f"{table.name}: pk {reflected['constrained_columns']} != {expected_pk}")
        if sync.dialect.name == "postgresql" and reflected["name"] != f"pk_{table.name}":
            problems.append(f"{table.name}: pk named {reflected['name']}")
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        for column in table.columns:
            compiled = column.type.compile(dialect=sync.dialect)
            if sync.dialect.name == "postgresql":
                wanted = "C" if 'COLLATE "C"' in compiled else None
                found = getattr(columns[column.name]["type"], "collation", None)
                if found != wanted:
                    problems.append(f"{table.name}.{column.name}: collation {found} != {wanted}")
            elif "COLLATE" in compiled:
                problems.append(f"{table.name}.{column.name}: unexpected {compiled}")
    return problems


def snapshot(sync: sa.Connection) -> dict[str, Any]:
    """Everything the inspector reports, in a comparable form."""
    inspector = sa.inspect(sync)
    out: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        out[name] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name),
            "fks": sorted(map(repr, inspector.get_foreign_keys(name))),
            "indexes": sorted(map(repr, inspector.get_indexes(name))),
            "uniques": sorted(map(repr, inspector.get_unique_constraints(name))),
        }
    return out


def versions(sync: sa.Connection) -> list[str]:
    return list(sync.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


async def upgrade_and_inspect(url: str, times: int = 1) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        snapshots = []
        for _ in range(times):
            await upgrade(engine)
            async with engine.connect() as conn:
                snapshots.append(await conn.run_sync(snapshot))
        async with engine.connect() as conn:
            return {
                "differences": await conn.run_sync(schema_differences),
                "key_differences": await conn.run_sync(key_differences),
                "tables": await conn.run_sync(lambda s: set(sa.inspect(s).get_table_names())),
                "versions": await conn.run_sync(versions),
                "snapshots": snapshots,
            }
    finally:
        await engine.dispose()


def test_upgrade_builds_the_declared_schema(database_url: str) -> None:
    result = asyncio.run(upgrade_and_inspect(database_url))
    assert result["differences"] == []
    assert result["key_differences"] == []
    assert result["tables"] == set(metadata.tables) | {"alembic_version"}
    assert result["versions"] == [head_revision()]


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    async def scenario() -> tuple[dict[str, Any], list[str]]:
        first = await upgrade_and_inspect(database_url)
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    feeds.insert().values(
                        name="kept", feed_type="docker", active=True, created_at=datetime.now(UTC)
                    )
                )
        finally:
            await engine.dispose()
        second = await upgrade_and_inspect(database_url, times=2)
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                names = list((await conn.execute(sa.select(feeds.c.name))).scalars())
        finally:
            await engine.dispose()
        assert first["snapshots"][0] == second["snapshots"][0] == second["snapshots"][1]
        return second, names

    second, names = asyncio.run(scenario())
    assert second["differences"] == []
    assert second["versions"] == [head_revision()]
    assert names == ["kept"]


def test_concurrent_upgrades_agree(database_url: str) -> None:
    # Several semreg processes may start at once on one database.
    async def scenario() -> list[str]:
        engines = [create_engine(database_url) for _ in range(3)]
        try:
            await asyncio.gather(*(upgrade(engine) for engine in engines))
            async with engines[0].connect() as conn:
                assert await conn.run_sync(schema_differences) == []
                return await conn.run_sync(versions)
        finally:
            for engine in engines:
                await engine.dispose()

    assert asyncio.run(scenario()) == [head_revision()]


def test_postgresql_compiles_byte_order_names() -> None:
    # The schema check above relies on name columns compiling with COLLATE "C" on PostgreSQL.
    compiled = feeds.c.name.type.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    assert compiled == 'VARCHAR(64) COLLATE "C"'


def test_0005_keeps_every_principal_and_gives_each_a_nonce(database_url: str) -> None:
    # 0005 rebuilds the principal tables on SQLite; nothing that referred to them may be lost.
    from alembic import command

    from semreg.metadata.migrate import _alembic_config

    now = datetime.now(UTC)

    def to_0004_and_fill(sync: sa.Connection) -> None:
        command.upgrade(_alembic_config(sync), "0004")
        sync.execute(
            sa.text(
                "INSERT INTO feeds (id, name, feed_type, active, created_at, container_versioning,"
                " anonymous_view) VALUES (7, 'kept', 'docker', true, :now, false, false)"
            ),
            {"now": now},
        )
        for user_id, name in ((3, "alice"), (9, "bob")):
            sync.execute(
                sa.text(
                    "INSERT INTO users (id, name, password_hash, created_at) "
                    "VALUES (:id, :name, 'hash', :now)"
                ),
                {"id": user_id, "name": name, "now": now},
            )
        sync.execute(
            sa.text(
                "INSERT INTO user_permissions (user_id, feed_id, permissions) "
                "VALUES (3, 7, '[\"view\"]')"
            )
        )
        sync.execute(
            sa.text(
                "INSERT INTO api_keys (id, key_hash, prefix, type, user_id, feed_id, created_at) "
                "VALUES (5, 'h1', 'semreg_ab', 'personal', 9, NULL, :now), "
                "(6, 'h2', 'semreg_cd', 'feed', NULL, 7, :now)"
            ),
            {"now": now},
        )

    def read(sync: sa.Connection) -> dict[str, Any]:
        return {
            "users": sync.execute(sa.text("SELECT id, name, nonce FROM users ORDER BY id")).all(),
            "keys": sync.execute(
                sa.text("SELECT id, user_id, feed_id, nonce FROM api_keys ORDER BY id")
            ).all(),
            "permissions": sync.execute(
                sa.text("SELECT user_id, feed_id FROM user_permissions")
            ).all(),
        }

    async def scenario() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(to_0004_and_fill)
            await upgrade(engine)
            async with engine.connect() as conn:
                assert await conn.run_sync(schema_differences) == []
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    found = asyncio.run(scenario())
    assert [(u.id, u.name) for u in found["users"]] == [(3, "alice"), (9, "bob")]
    assert [(k.id, k.user_id, k.feed_id) for k in found["keys"]] == [(5, 9, None), (6, None, 7)]
    assert [tuple(p) for p in found["permissions"]] == [(3, 7)]
    nonces = [row.nonce for row in [*found["users"], *found["keys"]]]
    assert all(len(n) == 32 for n in nonces)
    assert len(set(nonces)) == len(nonces)


def test_the_revision_a_server_checks_for_is_the_newest_migration() -> None:
    # A server whose database is at HEAD skips Alembic entirely (it is never imported).
    assert head_revision() == migrate.HEAD


def test_a_current_database_is_not_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> tuple[bool, bool]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'semreg.db'}")
        try:
            before = await migrate.is_current(engine)
            await upgrade(engine)
            after = await migrate.is_current(engine)

            def refuse(_connection: object) -> None:
                raise AssertionError("Alembic ran on a current database")

            monkeypatch.setattr(migrate, "_upgrade", refuse)
            await upgrade(engine)  # current: Alembic is not even loaded
            return before, after
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == (False, True)
