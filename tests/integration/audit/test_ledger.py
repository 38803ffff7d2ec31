"""The ledger on SQLite and PostgreSQL: tamper evidence, checkpoints, append-only enforcement."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from services.audit.ledger.service import (append_events, create_checkpoint, envelope_record, verify_ledger)
from services.audit.tables import ledger_records
from shared.db import transaction
from shared.signing import trusted_keys
from tests.helpers import signed
from tests.integration.audit.support import entitlement_event, feed, registry_event, snapshot, tamper


async def seed(app, n: int = 6) -> list[dict]:
    records = []
    for i in range(1, n + 1):
        snap = snapshot("hh-1", version=i)
        records += await feed(app, registry_event("household.updated", snap, time=f"2020-01-{i:02d}T00:00:00"))
    records += await feed(app, entitlement_event("hh-1", "industry.machinery", "granted"), partition=1)
    return records


async def verify(audit) -> dict:
    response = await audit.get("/v1/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()


async def test_intact_ledger_verifies_and_duplicates_are_ignored(audit):
    records = await seed(audit.app)
    again = await feed(audit.app, registry_event("household.updated", snapshot("hh-1")))
    assert again != [None]  # a new event id is a new record ...
    dup = registry_event("household.updated", snapshot("hh-1", version=9))
    assert (await feed(audit.app, dup))[0] is not None
    assert (await feed(audit.app, dup)) == [None]  # ... the same event id is not
    result = await verify(audit)
    assert result["ok"] and result["first_bad_record"] is None
    assert result["records_checked"] == len(records) + 2
    assert set(result["chain_heads"]) == {"jz.registry.v1:0", "jz.benefits.v1:1"}
    assert len(result["head_hash"]) == 64


async def test_ids_are_masked_and_keyed_hash_kept(audit):
    from shared.personal_data import event_form, keyed_id_hasher
    # The registry publishes masked numbers with their keyed hash; the ledger keeps both, never a clear number.
    snap = event_form(snapshot("hh-9"), keyed_id_hasher(b"identity"))
    [record] = await feed(audit.app, registry_event("household.registered", snap))
    member = record["data"]["household"]["members"][0]
    assert "*" in member["id_number"] and len(member["id_number_hash"]) == 64
    items = (await audit.get("/v1/audit/records", params={"subject": "household/hh-9"})).json()["items"]
    assert items[0]["data"]["household"]["members"][0]["id_number"] == member["id_number"]


@pytest.mark.parametrize("column", ["data", "hash"])
async def test_tampered_payload_or_hash_is_detected_and_located(audit, column):
    records = await seed(audit.app)
    victim = records[3]
    if column == "data":
        await tamper(audit.app, "UPDATE ledger_records SET data = :d WHERE id = :i",
                     {"d": '{"household": {"status": "exited"}}', "i": victim["id"]})
    else:
        await tamper(audit.app, "UPDATE ledger_records SET hash = :h WHERE id = :i", {"h": "f" * 64, "i": victim["id"]})
    result = await verify(audit)
    assert result["ok"] is False
    bad = result["first_bad_record"]
    if column == "data":
        assert bad["id"] == victim["id"] and bad["seq"] == victim["seq"] and "altered" in bad["reason"]
    else:  # a rewritten hash breaks the record itself (and the next record's link)
        assert bad["id"] == victim["id"]
    assert bad["chain_id"] == "jz.registry.v1:0" and bad["event_id"] == victim["event_id"]


async def test_reordered_records_are_detected(audit):
    records = await seed(audit.app)
    a, b = records[1], records[2]
    # swap the positions of two records (seq is unique, so go through a free value)
    await tamper(audit.app, "UPDATE ledger_records SET seq = -1 WHERE id = :i", {"i": a["id"]})
    await tamper(audit.app, "UPDATE ledger_records SET seq = :s WHERE id = :i", {"s": a["seq"], "i": b["id"]})
    await tamper(audit.app, "UPDATE ledger_records SET seq = :s WHERE id = :i", {"s": b["seq"], "i": a["id"]})
    result = await verify(audit)
    assert not result["ok"]
    assert result["first_bad_record"]["seq"] == a["seq"]
    assert result["first_bad_record"]["id"] == b["id"]


async def test_deleted_record_in_the_middle_is_detected(audit):
    records = await seed(audit.app)
    await tamper(audit.app, "DELETE FROM ledger_records WHERE id = :i", {"i": records[2]["id"]})
    bad = (await verify(audit))["first_bad_record"]
    assert bad["seq"] == records[3]["seq"] and "missing" in bad["reason"]


async def test_truncated_tail_is_detected_against_the_latest_checkpoint(audit):
    records = await seed(audit.app)
    created = await audit.post("/v1/audit/checkpoints", headers=audit.admin)
    assert created.status_code == 201, created.text
    checkpoint = created.json()
    assert checkpoint["type"] == "ledger.checkpoint" and checkpoint["chain_id"] == "checkpoints"
    assert checkpoint["data"]["chain_heads"]["jz.registry.v1:0"]["seq"] == 6
    assert (await verify(audit))["ok"]
    # drop the last two registry records: the chain alone still verifies ...
    await tamper(audit.app, "DELETE FROM ledger_records WHERE id IN (:a, :b)",
                 {"a": records[4]["id"], "b": records[5]["id"]})
    result = await verify(audit)
    assert result["ok"] is False  # ... but the checkpoint remembers how long it was
    bad = result["first_bad_record"]
    assert bad["chain_id"] == "jz.registry.v1:0" and bad["seq"] == 5 and "truncated" in bad["reason"]
    assert bad["checkpoint_record_id"] == checkpoint["id"]


async def test_checkpoint_needs_admin_and_is_listed(audit):
    await seed(audit.app, 2)
    assert (await audit.post("/v1/audit/checkpoints")).status_code == 403
    assert (await audit.post("/v1/audit/checkpoints", headers=audit.admin)).status_code == 201
    listed = (await audit.get("/v1/audit/checkpoints")).json()["items"]
    assert len(listed) == 1 and listed[0]["data"]["merkle_root"]
    result = await verify(audit)
    assert result["ok"] and result["checkpoints_checked"] == 1


async def test_daily_checkpoint_is_written_once_a_day(audit):
    from datetime import datetime, timezone
    from services.audit.consumer import checkpoint_if_due
    await seed(audit.app, 1)
    now = datetime(2020, 7, 1, 3, tzinfo=timezone.utc)
    first = await checkpoint_if_due(audit.app.state.sessionmaker, audit.settings, 86400, now=now)
    assert first and first["event_id"] == "checkpoint-daily-2020-07-01"
    assert await checkpoint_if_due(audit.app.state.sessionmaker, audit.settings, 86400, now=now) is None


async def test_database_rejects_update_and_delete(audit):
    await seed(audit.app, 2)
    for sql in ("UPDATE ledger_records SET actor = 'x'", "DELETE FROM ledger_records"):
        with pytest.raises((DBAPIError, OperationalError, IntegrityError)) as caught:
            async with audit.app.state.engine.begin() as conn:
                await conn.execute(text(sql))
        assert "append-only" in str(caught.value)
    if audit.app.state.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with audit.app.state.engine.begin() as conn:
                await conn.execute(text("TRUNCATE ledger_records"))
    async with audit.app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ledger_records)) == 3


async def test_batched_append_builds_the_same_chain(audit):
    envelopes = [signed(registry_event("household.updated", snapshot("hh-b", version=i)), audit.settings.var_dir)
                 for i in range(1, 6)]
    async with transaction(audit.app.state.sessionmaker) as session:
        written = await append_events(session, envelopes + envelopes[:2], "bulk:0", "sha256")
    assert [r["seq"] for r in written] == [1, 2, 3, 4, 5]
    from services.audit.ledger.chain import GENESIS_HASH, record_hash
    prev = GENESIS_HASH
    for envelope, record in zip(envelopes, written):
        expected = {**envelope_record(envelope, "bulk:0"), "seq": record["seq"]}
        assert record_hash(prev, expected) == record["hash"]
        prev = record["hash"]
    assert (await verify(audit))["ok"]


async def test_sm3_ledger_verifies_and_detects_tampering(databases, tmp_path):
    from services.audit.app import create_app
    from shared.config import AuditSettings
    from tests.helpers import running_app
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"), hash_algorithm="sm3",
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False)
    async with running_app(app):
        records = await seed(app, 3)
        async with transaction(app.state.sessionmaker) as session:
            await create_checkpoint(session, "sm3")
        trusted = trusted_keys(settings)
        result = await verify_ledger(app.state.sessionmaker, "sm3", trusted)
        assert result["ok"] and result["algorithm"] == "sm3"
        assert not (await verify_ledger(app.state.sessionmaker, "sha256", trusted))["ok"]  # really SM3, not SHA-256
        await tamper(app, "UPDATE ledger_records SET actor = 'someone-else' WHERE id = :i", {"i": records[1]["id"]})
        bad = (await verify_ledger(app.state.sessionmaker, "sm3", trusted))["first_bad_record"]
        assert bad["id"] == records[1]["id"]
