"""Run the Alembic migrations to head on start. Imports: alembic, sqlalchemy, stdlib.

On PostgreSQL a transaction-scoped advisory lock lets several semreg processes start at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS: Final = Path(__file__).parent / "migrations"
_LOCK_ID: Final = 0x5E3E6  # any constant shared by every semreg process


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""
    async with engine.connect() as conn:
        await conn.execution_options(semreg_write=True)
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            await conn.run_sync(_upgrade)
