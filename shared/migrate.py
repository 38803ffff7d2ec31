"""Runs a service's own Alembic history (embedded start-up, ``jingzhun migrate``, tests), and keeps the
PostgreSQL planner's statistics fresh after migrations and bulk writes (``analyze_tables``)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

log = logging.getLogger("jingzhun.migrate")

#: PostgreSQL autovacuum's default analyze rule (``autovacuum_analyze_threshold`` 50 rows plus
#: ``autovacuum_analyze_scale_factor`` 10% of the table), applied right after a bulk write instead of up
#: to a minute later, or never when autovacuum is off or busy.
ANALYZE_THRESHOLD_ROWS = 50
ANALYZE_SCALE_FACTOR = 0.1
#: Smaller tables are left alone: PostgreSQL plans a table never analysed as at least 10 pages.
ANALYZE_MIN_PAGES = 10


def alembic_config(service: str, url: str) -> Config:
    script_location = Path(str(resources.files(f"services.{service}"))) / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def _revisions(sync_connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(sync_connection).get_current_heads()))


def _upgrade(sync_connection, config: Config) -> bool:
    """Upgrade to head; True when at least one revision was applied."""
    before = _revisions(sync_connection)
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")
    return _revisions(sync_connection) != before


async def upgrade_to_head(service: str, engine: AsyncEngine, *, analyze: bool = True) -> None:
    """Upgrade using an existing async engine (safe inside a running event loop).

    On PostgreSQL it then analyses the tables whose statistics a plan would trust wrongly (of those of
    10 pages or more, ``analyze_tables``): after a migration was applied, all of them (a migration may
    have rewritten any); when there was nothing to apply (a restart), those never analysed or changed
    past autovacuum's threshold since (data bulk-loaded while autovacuum was off or had not run yet).
    """
    config = alembic_config(service, engine.url.render_as_string(hide_password=False))
    async with engine.begin() as connection:
        applied = await connection.run_sync(_upgrade, config)
    if analyze:
        await analyze_tables(engine, stale=not applied)


async def analyze_tables(bind: AsyncEngine | async_sessionmaker, tables: Iterable[str] | None = None, *,
                         changed_rows: int | None = None, stale: bool = False) -> list[str]:
    """``ANALYZE`` on PostgreSQL (nothing on SQLite); the tables analysed.

    ``tables``: the tables a caller just filled (default: every table of the current schema). Only
    tables of 10 pages (80 kB) or more are analysed: PostgreSQL plans a table never analysed as at least
    10 pages, which keeps index plans for the statements a service prepares while its tables are still
    small; analysed while (nearly) empty, a table gets plans that scan it whole, and the generic plan a
    prepared statement caches keeps them as the table grows, until the next ANALYZE (which autovacuum
    runs when it is on; this server's may not be).

    By default every such table is analysed. ``changed_rows`` (the rows the caller just wrote) limits it
    to the tables never analysed and those where that count passes autovacuum's rule (50 rows + 10% of
    the table at its last analysis); ``stale`` applies the rule to PostgreSQL's own count of changes since
    the last analysis instead (that count lags a just-committed write by up to a second or so: a caller
    that knows what it wrote passes ``changed_rows``).
    """
    engine = bind if isinstance(bind, AsyncEngine) else bind.kw["bind"]
    if engine.dialect.name != "postgresql":
        return []
    wanted = sorted(set(tables)) if tables is not None else None
    query = text(
        "SELECT c.relname, c.reltuples, COALESCE(s.n_mod_since_analyze, 0) AS changed"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        " AND pg_relation_size(c.oid) >= :min_pages * current_setting('block_size')::int"
        + (" AND c.relname IN :tables" if wanted is not None else "")
        + " ORDER BY c.relname")
    if wanted is not None:
        if not wanted:
            return []
        query = query.bindparams(bindparam("tables", expanding=True))
    async with engine.begin() as connection:
        rows = (await connection.execute(query, {"min_pages": ANALYZE_MIN_PAGES,
                                                 **({"tables": wanted} if wanted is not None else {})})).all()
        selective = changed_rows is not None or stale
        chosen = [row.relname for row in rows if not selective or row.reltuples < 0
                  or (row.changed if stale else changed_rows) > ANALYZE_THRESHOLD_ROWS
                  + ANALYZE_SCALE_FACTOR * row.reltuples]
        if chosen:
            quote = connection.dialect.identifier_preparer.quote
            await connection.execute(text("ANALYZE " + ", ".join(quote(name) for name in chosen)))
    if chosen:
        log.info("analysed %s", ", ".join(chosen))
    return chosen
