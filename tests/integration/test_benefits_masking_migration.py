"""Benefits 0006: snapshots stored with clear numbers are masked and re-keyed, and what was keyed by the
old look-up hash (the index, year-to-date settlement totals) follows the person (SQLite and PostgreSQL)."""
from __future__ import annotations

import copy
import datetime as dt
import json

from alembic import command
from sqlalchemy import insert, select

from services.benefits.partners.tables import person_lookup, settlement_ytd
from services.benefits.tables import household_snapshots
from shared.db import make_engine
from shared.migrate import alembic_config
from shared.personal_data import identity_hasher
from tests.helpers import example


async def test_0006_masks_stored_snapshots_and_carries_old_hashes_over(databases):
    engine = make_engine(await databases.url("benefits"))
    config = alembic_config("benefits", engine.url.render_as_string(hide_password=False))

    def upgrade_to(sync_connection, revision: str) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, revision)

    snapshot = copy.deepcopy(example("nankang-farmer")["household"])
    head = snapshot["members"][0]
    now = dt.datetime.now(dt.timezone.utc)
    old_hash = "0f" * 32  # what the former benefits-only key gave
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to, "0005")
            await conn.execute(insert(household_snapshots).values(
                household_id=snapshot["id"], version=snapshot["version"], region_code=snapshot["region_code"],
                village_code=None, township_code=None, status=snapshot["status"], snapshot=snapshot,
                updated_at=now))
            await conn.execute(insert(person_lookup).values(
                id_hash=old_hash, household_id=snapshot["id"], person_id=head["id"], id_masked="360782********0018",
                region_code=snapshot["region_code"], status="registered", exit_date=None, identified_year=2014,
                categories=[], deceased=False, in_household=True, roster_listed=True, roster_seq=1, updated_at=now))
            await conn.execute(insert(settlement_ytd).values(id_hash=old_hash, year=2020, out_of_pocket="120.00",
                                                             stays=1, updated_at=now))
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to, "head")
        async with engine.connect() as conn:
            stored = (await conn.execute(select(household_snapshots.c.snapshot))).scalar_one()
            stored = json.loads(stored) if isinstance(stored, str) else stored
            lookup_hashes = (await conn.execute(select(person_lookup.c.id_hash))).scalars().all()
            ytd = (await conn.execute(select(settlement_ytd.c.id_hash, settlement_ytd.c.stays))).all()
    finally:
        await engine.dispose()
    new_hash = identity_hasher()(head["id_number"])
    members = stored["members"]
    assert all("*" in m["id_number"] and len(m["id_number_hash"]) == 64 for m in members)
    assert not any(m["id_number"] in json.dumps(stored) for m in snapshot["members"])
    assert members[0]["id_number_hash"] == new_hash and members[0]["birth_date"] == head["birth_date"]
    assert lookup_hashes == [new_hash]
    assert [(row.id_hash, row.stays) for row in ytd] == [(new_hash, 1)]
