"""Run one benchmark on SQLite and PostgreSQL: a fresh SQLite file, a throwaway PostgreSQL database."""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


async def admin_sql(postgres_url: str, sql: str) -> None:
    import asyncpg
    url = make_url(postgres_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def on_backends(backends: list[str], postgres_url: str | None, service: str,
                      run: Callable[[str, str], Awaitable[Any]]) -> dict[str, Any]:
    """``run(label, url)`` for each of ``backends`` ("sqlite", "postgres") on a database made for it and
    removed after; {label: what it returned}. PostgreSQL without ``postgres_url`` is skipped, saying so."""
    results: dict[str, Any] = {}
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="jz-bench-") as folder:
            results["SQLite"] = await run("SQLite", f"sqlite+aiosqlite:///{Path(folder) / (service + '.db')}")
    if "postgres" in backends:
        if not postgres_url:
            print("\nPostgreSQL skipped: pass --postgres-url or set JZ_TEST_POSTGRES_URL")
        else:
            database = f"jz_bench_{service}_{uuid.uuid4().hex[:8]}"
            await admin_sql(postgres_url, f'CREATE DATABASE "{database}"')
            try:
                url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
                results["PostgreSQL"] = await run("PostgreSQL", url)
            finally:
                await admin_sql(postgres_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return results
