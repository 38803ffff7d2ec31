"""Each service's Alembic history builds exactly what its table definitions declare, on both databases."""
from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db import make_engine
from shared.migrate import upgrade_to_head

# Modules whose import registers every table of the service on its metadata.
TABLE_MODULES = {
    "registry": ["services.registry.tables"],
    "benefits": ["services.benefits.tables", "services.benefits.partners.tables"],
    "audit": ["services.audit.tables"],
}


@pytest.mark.parametrize("service", sorted(TABLE_MODULES))
async def test_migrations_match_the_table_definitions(databases, service):
    modules = [importlib.import_module(name) for name in TABLE_MODULES[service]]
    metadata = modules[0].metadata
    engine = make_engine(await databases.url(service))
    try:
        await upgrade_to_head(service, engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata))
    finally:
        await engine.dispose()
    assert diff == []
