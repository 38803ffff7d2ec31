"""The partner look-up's read of stored rows (``index_persons``): the same rows as ``household_id = ? OR
id_hash IN (...)`` on SQLite and PostgreSQL, and on PostgreSQL no branch is planned as a scan of the whole
``person_lookup`` table, neither on a large analysed table nor in the plan a prepared statement caches
while the table is small and was never analysed (how the OR came to scan it once per stored household)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from services.benefits.partners.lookup import PROBES_PER_STATEMENT, stored_rows, stored_rows_queries
from services.benefits.partners.tables import person_lookup
from shared.db import make_engine, make_sessionmaker
from shared.migrate import upgrade_to_head


def key(n: int) -> str:
    return f"{n:064x}"


def rows(count: int) -> list[dict]:
    """Households of three; every 10th person moved on to the next household (its row says so)."""
    now = dt.datetime.now(dt.timezone.utc)
    return [{"id_hash": key(i), "household_id": f"hh-{(i // 3) + (1 if i % 10 == 0 else 0):06d}",
             "person_id": f"p{i}", "id_masked": "360782********001X", "region_code": "360703",
             "status": "registered", "exit_date": None, "identified_year": 2014, "categories": ["a"],
             "deceased": False, "in_household": i % 7 != 0, "roster_listed": False, "roster_seq": None,
             "updated_at": now, "deceased_on": None, "status_since": None} for i in range(count)]


def or_query(household_id: str, id_hashes: list[str]):
    """The statement ``index_persons`` used before."""
    return select(person_lookup).where((person_lookup.c.household_id == household_id)
                                       | person_lookup.c.id_hash.in_(id_hashes))


async def filled_engine(databases, count: int, analyse: bool):
    engine = make_engine(await databases.url("benefits"))
    await upgrade_to_head("benefits", engine)
    async with engine.begin() as conn:
        if count:
            await conn.execute(insert(person_lookup), rows(count))
        if analyse and engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE person_lookup"))
    return engine


CASES = {
    "members as stored": ("hh-000010", [key(30), key(31), key(32)]),
    "one new member": ("hh-000010", [key(31), key(32), key(10**6)]),
    "moved in from elsewhere": ("hh-000011", [key(33), key(30), key(41)]),  # 30 moved on to hh-000011
    "nobody listed any more": ("hh-000020", []),
    "unknown household": ("hh-999999", [key(5), key(10**6 + 1)]),
    "a household larger than one statement": ("hh-000012", [key(i) for i in range(36, 36 + 2 * PROBES_PER_STATEMENT + 7)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_same_rows_as_the_or(databases, case):
    engine = await filled_engine(databases, 600, analyse=True)
    household_id, id_hashes = CASES[case]
    try:
        async with make_sessionmaker(engine)() as session:
            expected = {row.id_hash: dict(row._mapping)
                        for row in (await session.execute(or_query(household_id, id_hashes))).all()}
            found = await stored_rows(session, household_id, id_hashes)
        assert found == expected
        assert expected or case == "nobody listed any more"
    finally:
        await engine.dispose()


async def plans(engine, statement, mode: str) -> list[str]:
    """EXPLAIN of ``statement`` prepared as the application prepares it (asyncpg: $n parameters), with
    PostgreSQL's plan cache forced to a custom or a generic plan."""
    import asyncpg
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup]
    url = make_url(engine.url.render_as_string(hide_password=False)).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(f"SET plan_cache_mode = {mode}")
        await conn.execute(f"PREPARE looked_up AS {compiled}")
        values = ", ".join("'" + value.replace("'", "''") + "'" for value in params)
        return [row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE looked_up({values})")]
    finally:
        await conn.close()


def scans_the_table(plan: list[str]) -> bool:
    return any("Seq Scan on person_lookup" in line for line in plan)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_no_branch_scans_a_large_analysed_table(databases, mode):
    if databases.backend != "postgres":
        pytest.skip("PostgreSQL plans")
    engine = await filled_engine(databases, 5000, analyse=True)
    try:
        for id_hashes in ([key(301)], [key(301), key(302), key(4000), key(10**6)]):
            for statement in stored_rows_queries("hh-000100", id_hashes):
                plan = await plans(engine, statement, mode)
                assert not scans_the_table(plan), "\n".join(plan)
                assert any("person_lookup_pkey" in line for line in plan), "\n".join(plan)
                assert any("ix_person_lookup_household_id" in line for line in plan), "\n".join(plan)
    finally:
        await engine.dispose()


async def test_the_plan_cached_while_the_table_is_small_and_never_analysed_uses_the_indexes(databases):
    # The state every benefits database starts in (autovacuum off or not yet run): the plan a prepared
    # statement caches then is the plan it keeps as the table grows, until something analyses the table.
    if databases.backend != "postgres":
        pytest.skip("PostgreSQL plans")
    engine = await filled_engine(databases, 30, analyse=False)
    try:
        id_hashes = [key(3), key(4), key(5), key(10**6)]
        for statement in stored_rows_queries("hh-000001", id_hashes):
            plan = await plans(engine, statement, "force_generic_plan")
            assert not scans_the_table(plan), "\n".join(plan)
        # what the OR got in the same state: the whole table, every time
        assert scans_the_table(await plans(engine, or_query("hh-000001", id_hashes), "force_generic_plan"))
    finally:
        await engine.dispose()
