"""Run the Alembic migrations to head on start. Imports: alembic, sqlalchemy, stdlib.

On PostgreSQL a transaction-scoped advisory lock lets several semreg processes start at once.
Alembic (and Mako under it) is imported only when the schema is behind ``HEAD``: a server
whose database is current never loads it, which keeps ~12 MiB out of every process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS: Final = Path(__file__).parent / "migrations"
_LOCK_ID: Final = 0x5E3E6  # any constant shared by every semreg process
HEAD: Final = "0005"
"""The newest revision in ``migrations/versions`` (a unit test keeps the two equal)."""


def _alembic_config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the schema is at ``HEAD`` already (one query; False for a new database)."""
    async with engine.connect() as conn:
        try:
            found = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        except sa.exc.DBAPIError:  # no such table yet
            return False
        return list(found.scalars()) == [HEAD]


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""
    if await is_current(engine):
        return
    async with engine.connect() as conn:
        await conn.execution_options(semreg_write=True)
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            await conn.run_sync(_upgrade)
