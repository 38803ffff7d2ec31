"""Verify hashes each record's data as stored (canonical JSON text) instead of decoding and re-encoding it,
on SQLite and PostgreSQL, and stays exactly as strict: for every tampering, its verdict is the verdict of
the decoding path (every record decoded and re-encoded, as verify did before)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import Text, cast, select
from sqlalchemy.exc import DBAPIError

from services.audit.ledger import chain as chain_module
from services.audit.ledger.chain import ChainVerifier, canonical_json
from services.audit.ledger.service import record_view, signature_check, verify_ledger
from services.audit.tables import ledger_records
from shared.signing import trusted_keys
from tests.integration.audit.support import entitlement_event, feed, registry_event, snapshot, tamper

TRICKY = {"zeta": 1, "alpha": {"b": 2.5, "a": [3, {"y": None, "x": True}]},
          "note": 'quote " backslash \\ colon : brace } line\u2028sep \x01 村 \U0001f600'}


async def seed(app) -> list[dict]:
    records = []
    for i in range(1, 5):
        snap = snapshot("hh-v", version=i)
        snap["extra"] = {**TRICKY, "i": i}
        records += await feed(app, registry_event("household.updated", snap, time=f"2020-01-{i:02d}T00:00:00"))
    records += await feed(app, entitlement_event("hh-v", "industry.machinery", "granted"), partition=1)
    return records


async def decoding_verdict(app) -> dict | None:
    """The first bad record as the decoding path finds it: every record decoded, re-encoded and hashed."""
    check = signature_check(trusted_keys(app.state.settings))
    async with app.state.sessionmaker() as session:
        rows = [record_view(r) for r in (await session.execute(
            select(ledger_records).order_by(ledger_records.c.chain_id, ledger_records.c.seq))).all()]
    for chain_id in sorted({r["chain_id"] for r in rows}):
        verifier = ChainVerifier(chain_id, "sha256", check)
        for record in (r for r in rows if r["chain_id"] == chain_id):
            if not verifier.feed(record):
                return verifier.first_bad
    return None


@pytest.fixture
def decoded(monkeypatch):
    """Counts the records verify had to decode (those whose stored text is not canonical)."""
    calls = []
    original = chain_module.record_hash

    def counting(prev_hash, record, algorithm="sha256"):
        calls.append(record.get("id"))
        return original(prev_hash, record, algorithm)
    monkeypatch.setattr(chain_module, "record_hash", counting)
    return calls


async def test_the_ledger_stores_canonical_text_and_verify_does_not_decode_it(audit, decoded):
    records = await seed(audit.app)
    async with audit.app.state.sessionmaker() as session:
        stored = dict((await session.execute(select(ledger_records.c.id, cast(ledger_records.c.data, Text)))).all())
    for record in records:
        assert stored[record["id"]] == canonical_json(record["data"]).decode("utf-8")
    assert stored[records[0]["id"]].count("\u2028") == 1  # kept as the character, as canonical JSON writes it
    result = await verify_ledger(audit.app.state.sessionmaker, "sha256", trusted_keys(audit.settings))
    assert result["ok"] and result["records_checked"] == len(records)
    assert decoded == []  # every record hashed as stored


async def test_a_record_stored_in_another_json_form_is_decoded_and_still_verifies(audit, decoded):
    # The same content written another way (spaces, insertion order): how records stored before the
    # ledger kept canonical text look. The decoding path accepts it; so does verify, by decoding it.
    records = await seed(audit.app)
    victim = records[1]
    await tamper(audit.app, "UPDATE ledger_records SET data = :d WHERE id = :i",
                 {"d": json.dumps(victim["data"]), "i": victim["id"]})
    result = await verify_ledger(audit.app.state.sessionmaker, "sha256", trusted_keys(audit.settings))
    assert result["ok"] and decoded == [victim["id"]]  # that record only was decoded
    assert await decoding_verdict(audit.app) is None


def _changed_data(record: dict) -> str:
    data = json.loads(json.dumps(record["data"]))
    data["household"]["status"] = "exited"
    return canonical_json(data).decode()


TAMPERINGS = {
    "data, canonical": ("UPDATE ledger_records SET data = :v WHERE id = :i", _changed_data),
    "data, not canonical": ("UPDATE ledger_records SET data = :v WHERE id = :i",
                            lambda r: json.dumps({**r["data"], "version": 99})),
    "actor": ("UPDATE ledger_records SET actor = :v WHERE id = :i", lambda r: "office-2"),
    "no actor": ("UPDATE ledger_records SET actor = NULL WHERE id = :i", None),
    "subject": ("UPDATE ledger_records SET subject = :v WHERE id = :i", lambda r: "household/hh-x"),
    "time": ("UPDATE ledger_records SET time = :v WHERE id = :i", lambda r: "2020-02-01T00:00:00Z"),
    "type": ("UPDATE ledger_records SET type = :v WHERE id = :i", lambda r: "household.registered"),
    "event_id": ("UPDATE ledger_records SET event_id = :v WHERE id = :i", lambda r: "forged-event"),
    "signer": ("UPDATE ledger_records SET signer = :v WHERE id = :i", lambda r: r["signer"] + "x"),
    "signature": ("UPDATE ledger_records SET signature = :v WHERE id = :i",
                  lambda r: ("A" if r["signature"][0] != "A" else "B") + r["signature"][1:]),
    "hash": ("UPDATE ledger_records SET hash = :v WHERE id = :i", lambda r: "f" * 64),
    "prev_hash": ("UPDATE ledger_records SET prev_hash = :v WHERE id = :i", lambda r: "0" * 64),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
async def test_every_tampering_gets_the_decoding_paths_verdict(audit, name):
    records = await seed(audit.app)
    victim = records[2]
    sql, value = TAMPERINGS[name]
    await tamper(audit.app, sql, {"i": victim["id"], **({"v": value(victim)} if value else {})})
    result = await verify_ledger(audit.app.state.sessionmaker, "sha256", trusted_keys(audit.settings))
    assert result["ok"] is False
    assert result["first_bad_record"]["id"] == victim["id"]
    assert result["first_bad_record"] == await decoding_verdict(audit.app)


async def test_text_that_takes_in_the_next_field_is_found(audit):
    # The stored data swallows the event id's bytes while the column gets another value: SQLite keeps
    # any text in the JSON column, and verify finds other bytes (altered); PostgreSQL refuses the text.
    records = await seed(audit.app)
    victim = records[2]
    text = canonical_json(victim["data"]).decode() + f',"event_id":"{victim["event_id"]}"'
    swallow = tamper(audit.app, "UPDATE ledger_records SET data = :d, event_id = :e WHERE id = :i",
                     {"d": text, "e": "x", "i": victim["id"]})
    if audit.app.state.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="(?i)json"):
            await swallow
        return
    await swallow
    result = await verify_ledger(audit.app.state.sessionmaker, "sha256", trusted_keys(audit.settings))
    assert result["ok"] is False and result["first_bad_record"]["id"] == victim["id"]
    assert "altered" in result["first_bad_record"]["reason"]
