"""Migrations 0001+0002 build exactly what services/registry/tables.py declares, on both databases."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.registry.tables import metadata
from shared.db import make_engine
from shared.migrate import upgrade_to_head


async def test_migrations_match_the_table_definitions(databases):
    engine = make_engine(await databases.url("registry"))
    try:
        await upgrade_to_head("registry", engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata))
    finally:
        await engine.dispose()
    assert diff == []
