"""Verify re-checks every record's origin: a signature altered in the database, a record rewritten with
its chain rebuilt, or an unsigned record is found; keys rotate without breaking old records."""
from __future__ import annotations

import json

from sqlalchemy import select

from services.audit.ledger.chain import GENESIS_HASH, record_hash
from services.audit.ledger.service import record_view, verify_ledger
from services.audit.tables import ledger_records
from shared.config import AuditSettings, RegistrySettings
from shared.signing import (TrustedKey, event_signer, key_id, load_private_key, new_private_key_pem,
                            rotate_event_key, sign_envelope, trusted_keys, verified_envelope, write_keyring)
from tests.helpers import signed
from tests.integration.audit.support import entitlement_event, feed, registry_event, snapshot, tamper


async def verify(audit) -> dict:
    response = await audit.get("/v1/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()


async def seed(app, n: int = 5) -> list[dict]:
    records = []
    for i in range(1, n + 1):
        records += await feed(app, registry_event("household.updated", snapshot("hh-s", version=i),
                                                  time=f"2020-01-{i:02d}T00:00:00"))
    return records


async def rehash_chain_from(app, chain_id: str, seq: int) -> None:
    """What an attacker with database rights does after changing a record: rebuild every hash after it."""
    async with app.state.sessionmaker() as session:
        rows = [record_view(r) for r in (await session.execute(
            select(ledger_records).where(ledger_records.c.chain_id == chain_id).order_by(ledger_records.c.seq))).all()]
    prev = GENESIS_HASH
    for record in rows:
        if record["seq"] >= seq:
            record["prev_hash"], record["hash"] = prev, record_hash(prev, record)
            await tamper(app, "UPDATE ledger_records SET prev_hash = :p, hash = :h WHERE id = :i",
                         {"p": record["prev_hash"], "h": record["hash"], "i": record["id"]})
        prev = record["hash"]


async def test_records_carry_signer_and_signature_and_verify(audit):
    records = await seed(audit.app)
    records += await feed(audit.app, entitlement_event("hh-s", "industry.machinery", "granted"), partition=1)
    assert all(r["signer"].startswith(r["source"] + "-") and r["signature"] for r in records)
    items = (await audit.get("/v1/audit/records", params={"subject": "household/hh-s"})).json()["items"]
    assert {item["signer"] for item in items} == {records[0]["signer"], records[-1]["signer"]}
    result = await verify(audit)
    assert result["ok"] and result["records_checked"] == len(records)


async def test_an_altered_signature_is_found_by_verify(audit):
    records = await seed(audit.app)
    victim = records[2]
    forged = ("A" if victim["signature"][0] != "A" else "B") + victim["signature"][1:]
    await tamper(audit.app, "UPDATE ledger_records SET signature = :s WHERE id = :i", {"s": forged, "i": victim["id"]})
    bad = (await verify(audit))["first_bad_record"]
    assert bad["id"] == victim["id"] and bad["event_id"] == victim["event_id"]
    assert "signature" in bad["reason"] and "bad signature" in bad["reason"], bad

    # The attacker rebuilds the chain too: hashes fit again, the signature still does not.
    await rehash_chain_from(audit.app, victim["chain_id"], victim["seq"])
    bad = (await verify(audit))["first_bad_record"]
    assert bad["id"] == victim["id"] and bad["reason"].startswith("signature: bad signature"), bad


async def test_rewritten_data_with_a_rebuilt_chain_is_found_by_its_signature(audit):
    records = await seed(audit.app)
    victim = records[1]
    data = dict(victim["data"], household={**victim["data"]["household"], "status": "exited"})
    await tamper(audit.app, "UPDATE ledger_records SET data = :d WHERE id = :i",
                 {"d": json.dumps(data, ensure_ascii=False), "i": victim["id"]})
    await rehash_chain_from(audit.app, victim["chain_id"], victim["seq"])
    bad = (await verify(audit))["first_bad_record"]
    assert bad["id"] == victim["id"] and "signature: bad signature" in bad["reason"], bad


async def test_unsigned_records_and_removed_signers_are_bad(audit):
    records = await seed(audit.app, 3)
    await tamper(audit.app, "UPDATE ledger_records SET signer = NULL, signature = NULL WHERE id = :i",
                 {"i": records[1]["id"]})
    await rehash_chain_from(audit.app, records[1]["chain_id"], records[1]["seq"])
    bad = (await verify(audit))["first_bad_record"]
    assert bad["id"] == records[1]["id"] and "unsigned" in bad["reason"], bad


async def test_checkpoints_are_signed_by_audit(audit):
    await seed(audit.app, 2)
    created = await audit.post("/v1/audit/checkpoints", headers=audit.admin)
    assert created.status_code in (200, 201), created.text
    async with audit.app.state.sessionmaker() as session:
        row = (await session.execute(select(ledger_records).where(ledger_records.c.chain_id == "checkpoints"))).first()
    assert row.signer.startswith("audit-") and row.signature
    assert (await verify(audit))["ok"]


async def test_embedded_rotation_old_records_verify_new_events_use_the_new_key(audit):
    var_dir = audit.settings.var_dir
    registry_settings = RegistrySettings(var_dir=var_dir)
    old_records = await seed(audit.app, 2)
    old_signer = event_signer(registry_settings).signer
    old_event = signed(registry_event("household.updated", snapshot("hh-late", version=1)), var_dir)

    retired, new = rotate_event_key(registry_settings)
    assert retired == old_signer and new != old_signer and event_signer(registry_settings).signer == new
    new_records = await feed(audit.app, registry_event("household.updated", snapshot("hh-s", version=9)))
    assert {r["signer"] for r in old_records} == {old_signer} and new_records[0]["signer"] == new
    trusted = trusted_keys(audit.settings)
    assert trusted.get(old_signer).retired and not trusted.get(new).retired
    result = await verify(audit)
    assert result["ok"] and result["records_checked"] == 3
    # An event staged before the rotation and published after it is still accepted.
    assert verified_envelope(old_event.to_bytes(), trusted, ledger=True).signer == old_signer


async def test_configured_keyring_rotation_and_removal(audit, tmp_path):
    """Production style: key files named by settings, a keyring listing old (retired) and new keys."""
    old_file, new_file = tmp_path / "registry-old.pem", tmp_path / "registry-new.pem"
    old_file.write_bytes(new_private_key_pem())
    new_file.write_bytes(new_private_key_pem())
    old_key = load_private_key(old_file).public_key()
    new_key = load_private_key(new_file).public_key()
    old_id, new_id = key_id("registry", old_key), key_id("registry", new_key)
    old = event_signer(RegistrySettings(var_dir=tmp_path / "elsewhere", event_signing_key_file=old_file))
    new = event_signer(RegistrySettings(var_dir=tmp_path / "elsewhere", event_signing_key_file=new_file))
    assert (old.signer, new.signer) == (old_id, new_id)
    before = registry_event("household.updated", snapshot("hh-k", version=1), time="2020-01-01T00:00:00")
    after = registry_event("household.updated", snapshot("hh-k", version=2), time="2020-01-02T00:00:00")
    await feed(audit.app, sign_envelope(before, old), sign_envelope(after, new))

    keyring = tmp_path / "keyring.json"
    write_keyring(keyring, [TrustedKey(old_id, "registry", old_key, retired=True),
                            TrustedKey(new_id, "registry", new_key)])
    # Only the keyring (and audit's own key) is trusted: a separate var_dir holds no embedded keys.
    settings = AuditSettings(var_dir=tmp_path / "audit-only", event_trusted_keys_file=keyring)
    only_keyring = trusted_keys(settings)
    result = await verify_ledger(audit.app.state.sessionmaker, "sha256", only_keyring)
    assert result["ok"] and result["records_checked"] == 2  # the retired key still verifies its record

    async with audit.app.state.sessionmaker() as session:
        rows = (await session.execute(select(ledger_records).order_by(ledger_records.c.seq))).all()
    assert [r.signer for r in rows] == [old_id, new_id]

    write_keyring(keyring, [TrustedKey(new_id, "registry", new_key)])  # a compromised key is removed, not retired
    bad = (await verify_ledger(audit.app.state.sessionmaker, "sha256", only_keyring))["first_bad_record"]
    assert bad["id"] == rows[0].id and bad["reason"].startswith(f"signature: unknown signer '{old_id}'"), bad
