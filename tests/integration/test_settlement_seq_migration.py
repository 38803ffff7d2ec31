"""Benefits 0012: settlements get their feed position after commit (seq nullable, partial index), and
the way back numbers the rows still without one, in created_at order, after the last position given
(SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import column, insert, table, text

from shared.db import make_engine
from shared.migrate import alembic_config


def _settlement(settlement_id: str, seq, minute: int) -> dict:
    return {"settlement_id": settlement_id, "client_id": "ins", "claim_id": settlement_id, "seq": seq,
            "id_hash": "ab" * 32, "id_masked": "360782********0018", "household_id": None, "person_id": None,
            "year": 2020, "eligible": False, "total_cost": "10.00", "patient_pays": "10.00", "body_hash": "cd" * 32,
            "request": "{}", "result": "{}",
            "created_at": dt.datetime(2020, 5, 1, 8, minute, tzinfo=dt.timezone.utc)}


async def test_0012_up_accepts_rows_without_a_position_and_down_numbers_them(databases):
    engine = make_engine(await databases.url("benefits"))
    config = alembic_config("benefits", engine.url.render_as_string(hide_password=False))

    def migrate(sync_connection, direction, revision: str) -> None:
        config.attributes["connection"] = sync_connection
        direction(config, revision)

    settlements = table("settlements", *(column(name) for name in _settlement("x", 1, 0)))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate, command.upgrade, "0011")
            await conn.execute(insert(settlements).values(_settlement("s-old", 1, 0)))
            await conn.execute(text("UPDATE partner_sequences SET value = 1 WHERE name = 'settlements'"))
        async with engine.begin() as conn:
            await conn.run_sync(migrate, command.upgrade, "0012")
            # Inserted out of time order: the way back numbers by created_at.
            await conn.execute(insert(settlements).values(_settlement("s-late", None, 30)))
            await conn.execute(insert(settlements).values(_settlement("s-early", None, 10)))
        async with engine.begin() as conn:
            await conn.run_sync(migrate, command.downgrade, "0011")
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT settlement_id, seq FROM settlements ORDER BY seq"))).all()
            last = (await conn.execute(text("SELECT value FROM partner_sequences WHERE name = 'settlements'"))).scalar()
        refused = None
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(settlements).values(_settlement("s-null", None, 40)))
        except Exception as error:  # NOT NULL again
            refused = error
        async with engine.begin() as conn:
            await conn.run_sync(migrate, command.upgrade, "head")
    finally:
        await engine.dispose()
    assert [(row.settlement_id, row.seq) for row in rows] == [("s-old", 1), ("s-early", 2), ("s-late", 3)]
    assert last == 3
    assert refused is not None and "null" in str(refused).lower()
