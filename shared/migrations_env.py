"""The body of every service's Alembic ``env.py``: online migrations over an async engine."""
from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData


def run(target_metadata: MetaData) -> None:
    config = context.config

    def do_run(connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        do_run(connection)
        return

    async def run_async() -> None:
        # shared.db.make_engine creates a SQLite file 0600 before opening it (personal data).
        from shared.db import make_engine
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        async with engine.begin() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
