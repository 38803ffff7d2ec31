"""Checkpoints attest how far every signature was checked; verify then skips the Ed25519 checks of the
attested prefixes and stays exactly as strict: for every tampering, before or after the attested seq, and
for a chain rebuilt by whoever can write the database, its verdict is the full run's."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.audit.ledger.chain import record_hash
from services.audit.ledger.service import create_checkpoint, verify_ledger
from services.audit.tables import ledger_records
from shared.db import transaction
from shared.signing import trusted_keys
from tests.integration.audit.support import feed, registry_event, snapshot, tamper
from tests.integration.audit.test_verify_stored_bytes import TAMPERINGS, seed


async def attest(app, settings) -> dict:
    async with transaction(app.state.sessionmaker) as session:
        return await create_checkpoint(session, "sha256", actor="test", trusted=trusted_keys(settings))


async def both_modes(audit) -> tuple[dict, dict]:
    keys = trusted_keys(audit.settings)
    return (await verify_ledger(audit.app.state.sessionmaker, "sha256", keys),
            await verify_ledger(audit.app.state.sessionmaker, "sha256", keys, full=True))


async def test_a_checkpoint_attests_and_verify_checks_only_the_newer_signatures(audit):
    records = await seed(audit.app)
    checkpoint = await attest(audit.app, audit.settings)
    attested = checkpoint["data"]["signatures_checked"]
    assert attested == checkpoint["data"]["chain_heads"]  # everything checked up to the heads
    later = await feed(audit.app, registry_event("household.updated", snapshot("hh-v", version=9),
                                                 time="2020-03-01T00:00:00"))
    quick, full = await both_modes(audit)
    assert quick["ok"] and full["ok"]
    total = len(records) + 1 + len(later)
    assert quick["records_checked"] == full["records_checked"] == total
    assert quick["signatures"] == {"full": False, "checked": 1 + len(later), "attested": len(records),
                                   "attesting_checkpoint": {"id": checkpoint["id"], "seq": checkpoint["seq"],
                                                            "event_id": checkpoint["event_id"]}}
    assert full["signatures"]["checked"] == total and full["signatures"]["attested"] == 0
    # The next checkpoint continues from this one's attestation.
    second = await attest(audit.app, audit.settings)
    assert second["data"]["signatures_checked"]["jz.registry.v1:0"]["seq"] == 5
    quick, _ = await both_modes(audit)
    assert quick["ok"] and quick["signatures"]["attested"] == len(records) + len(later)  # checkpoints: always in full


@pytest.mark.parametrize("name", ["data, canonical", "no actor", "prev_hash", "signature", "signer"])
async def test_tampering_inside_the_attested_prefix_gets_the_full_verdict(audit, name):
    records = await seed(audit.app)
    await attest(audit.app, audit.settings)
    victim = records[2]
    sql, value = TAMPERINGS[name]
    await tamper(audit.app, sql, {"i": victim["id"], **({"v": value(victim)} if value else {})})
    quick, full = await both_modes(audit)
    assert quick["ok"] is False and quick["first_bad_record"]["id"] == victim["id"]
    assert quick["first_bad_record"] == full["first_bad_record"]


async def test_a_chain_rebuilt_after_forging_a_record_is_caught_by_its_signature(audit):
    # Whoever can write the database changes a record and recomputes every hash after it: the hash chain
    # fits, the attested hash no longer does, so that chain is checked in full and the forged record's
    # signature fails, exactly as in a full run.
    records = await seed(audit.app)
    await attest(audit.app, audit.settings)
    victim = records[1]
    async with audit.app.state.sessionmaker() as session:
        rows = [dict(r._mapping) for r in (await session.execute(select(ledger_records).where(
            ledger_records.c.chain_id == victim["chain_id"]).order_by(ledger_records.c.seq))).all()]
    prev = None
    for row in rows:
        if row["id"] == victim["id"]:
            row["data"] = {**row["data"], "version": 99}
        if prev is not None:
            row["prev_hash"] = prev
        row["hash"] = prev = record_hash(row["prev_hash"], row, "sha256")
        await tamper(audit.app, "UPDATE ledger_records SET data = :d, prev_hash = :p, hash = :h WHERE id = :i",
                     {"d": json.dumps(row["data"]), "p": row["prev_hash"], "h": row["hash"], "i": row["id"]})
    quick, full = await both_modes(audit)
    assert quick["ok"] is False and quick["first_bad_record"] == full["first_bad_record"]
    assert quick["first_bad_record"]["id"] == victim["id"]
    assert "signature" in quick["first_bad_record"]["reason"]


async def test_a_signer_no_longer_trusted_fails_inside_the_attested_prefix(audit, monkeypatch):
    records = await seed(audit.app)
    await attest(audit.app, audit.settings)
    keys = trusted_keys(audit.settings)
    distrusted = records[0]["signer"]
    original = keys.get
    monkeypatch.setattr(keys, "get", lambda signer: None if signer == distrusted else original(signer))
    monkeypatch.setattr(keys, "refresh", lambda force=False: False)
    quick, full = await both_modes(audit)
    assert quick["ok"] is False and quick["first_bad_record"] == full["first_bad_record"]
    assert "unknown signer" in quick["first_bad_record"]["reason"]


async def test_a_forged_attestation_is_not_believed(audit):
    # An attestation written into the database without audit's key: the checkpoint chain (checked first,
    # in full) fails, and nothing of it is used.
    records = await seed(audit.app)
    checkpoint = await attest(audit.app, audit.settings)
    forged = {**checkpoint["data"], "note": "forged"}
    await tamper(audit.app, "UPDATE ledger_records SET data = :d WHERE id = :i",
                 {"d": json.dumps(forged), "i": checkpoint["id"]})
    quick, full = await both_modes(audit)
    assert quick["ok"] is False and quick["first_bad_record"] == full["first_bad_record"]
    assert quick["first_bad_record"]["chain_id"] == "checkpoints"
    assert quick["signatures"]["attested"] == 0 and len(records) > 0
