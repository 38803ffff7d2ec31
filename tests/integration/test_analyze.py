"""PostgreSQL statistics are refreshed where bulk writes happen: after a migration (and at a restart, for
data loaded while nothing analysed it), after a ledger import commits, after a bulk recompute job;
``pg_stat_user_tables.last_analyze`` shows it. SQLite: nothing to do, nothing done."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from alembic import command
from sqlalchemy import insert, text

from bench.bench_recompute import store_snapshots
from bench.datagen import generate_households
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import FILLED_TABLES, create_job, run_job
from services.benefits.tables import household_snapshots
from services.registry.imports.sample import generate_ledger
from services.registry.imports.service import IMPORTED_TABLES
from shared.db import make_engine, make_sessionmaker, transaction
from shared.migrate import alembic_config, analyze_tables, upgrade_to_head

AS_OF = dt.date(2020, 6, 30)
# A backend reports its row counts to the statistics up to ~1 s (idle: 10 s) after a commit; this makes it
# report them at the commit, so a later ANALYZE is not followed by counts of rows it already saw.
FLUSH_STATS = text("SELECT pg_stat_force_next_flush()")
PAD = "x" * 600  # rows of a realistic width: 300 of them fill more than the 10 pages a table needs to be analysed


def postgres_only(databases) -> None:
    if databases.backend != "postgres":
        pytest.skip("ANALYZE statistics are PostgreSQL's (SQLite: see test_sqlite_is_left_alone)")


async def last_analyzed(engine) -> dict[str, dt.datetime | None]:
    async with engine.connect() as conn:
        return dict((await conn.execute(text(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE schemaname = current_schema()"))).all())


async def page_counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(text(
            "SELECT relname, pg_relation_size(relid) / current_setting('block_size')::int"
            " FROM pg_stat_user_tables WHERE schemaname = current_schema()"))).all())


def snapshot_rows(count: int, start: int = 0) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc)
    return [{"household_id": f"hh-{start + i:06d}", "version": 1, "region_code": "360703", "village_code": None,
             "township_code": None, "status": "registered", "snapshot": {"id": f"hh-{start + i:06d}", "pad": PAD},
             "updated_at": now} for i in range(count)]


async def test_sqlite_is_left_alone(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'benefits.db'}")
    try:
        await upgrade_to_head("benefits", engine)
        assert await analyze_tables(engine) == []
    finally:
        await engine.dispose()


async def test_migrate_analyses_the_tables_holding_rows(databases):
    postgres_only(databases)
    engine = make_engine(await databases.url("benefits"))
    config = alembic_config("benefits", engine.url.render_as_string(hide_password=False))

    def upgrade_to(sync_connection, revision: str) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as conn:  # an older database with data in it ...
            await conn.run_sync(upgrade_to, "0010")
            await conn.execute(insert(household_snapshots), snapshot_rows(300))
            await conn.execute(FLUSH_STATS)
        await upgrade_to_head("benefits", engine)  # ... migrated: every table holding rows is analysed
        analysed = await last_analyzed(engine)
        assert analysed["household_snapshots"] is not None
        # Left alone on purpose, being empty or tiny: never analysed, PostgreSQL plans them as 10 pages.
        assert analysed["person_lookup"] is None and analysed["alembic_version"] is None
        first = analysed["household_snapshots"]

        # A restart with nothing to migrate analyses only what needs it: the rows loaded since into a table
        # never analysed, and nothing else (the snapshots changed by less than autovacuum's threshold).
        async with engine.begin() as conn:
            await conn.execute(insert(household_snapshots), snapshot_rows(5, start=300))
            await conn.execute(text("INSERT INTO villages (code, version, data, updated_at) SELECT 'v' || i, 1, "
                                    f"'{{\"pad\": \"{PAD}\"}}', now() FROM generate_series(1, 200) AS i"))
            await conn.execute(FLUSH_STATS)
        await upgrade_to_head("benefits", engine)
        analysed = await last_analyzed(engine)
        assert analysed["villages"] is not None
        assert analysed["household_snapshots"] == first
    finally:
        await engine.dispose()


async def test_ledger_import_analyses_what_it_filled(databases, tmp_path):
    postgres_only(databases)
    import httpx

    from services.registry.app import create_app
    from shared.auth import mint_token
    from shared.config import RegistrySettings
    from tests.helpers import running_app

    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create_app(settings, benefits_transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    admin = {"Authorization": f"Bearer {mint_token(settings, 'admin')}"}

    def ledger_csv(rows: int, seed: int) -> bytes:
        header, body = generate_ledger(rows, seed=seed)
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *body])
        return buffer.getvalue().encode("utf-8-sig")

    async with running_app(app) as client:
        engine = app.state.engine
        before = await last_analyzed(engine)
        assert all(before[table] is None for table in IMPORTED_TABLES)  # empty at migration: not analysed
        response = await client.post("/v1/imports", headers=admin,
                                     files={"file": ("ledger.csv", ledger_csv(2000, 5), "text/csv")})
        assert response.status_code == 201, response.text[:500]
        assert response.json()["written"] > 50
        after = await last_analyzed(engine)
        assert all(after[table] is not None for table in IMPORTED_TABLES), after

        # A small import into a table already analysed stays under autovacuum's rule: no new ANALYZE.
        small = await client.post("/v1/imports", headers=admin,
                                  files={"file": ("small.csv", ledger_csv(6, 77), "text/csv")})
        assert small.status_code == 201, small.text[:500]
        assert (await last_analyzed(engine))["households"] == after["households"]


async def test_a_finished_recompute_job_analyses_what_it_filled(databases):
    postgres_only(databases)
    engine = make_engine(await databases.url("benefits"))
    try:
        await upgrade_to_head("benefits", engine)
        await store_snapshots(engine, generate_households(30, seed=3))
        sessionmaker = make_sessionmaker(engine)
        before = await last_analyzed(engine)
        assert all(before[table] is None for table in FILLED_TABLES)
        async with transaction(sessionmaker) as session:
            job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=5)
        done = await run_job(sessionmaker, job["id"])
        assert done["status"] == "done" and done["decisions"] > 50
        analysed, pages = await last_analyzed(engine), await page_counts(engine)
        assert pages["entitlements"] >= 10 and pages["entitlement_history"] >= 10, pages
        for table in FILLED_TABLES:  # those of 10 pages or more (assessments' rows are short)
            assert (analysed[table] is not None) == (pages[table] >= 10), (table, pages)
    finally:
        await engine.dispose()

