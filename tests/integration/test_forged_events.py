"""A forged event written straight to the topic (the attack of issue 9) is dead-lettered by benefits
and by audit with the reason, and changes nothing; the genuine next version still goes through."""
from __future__ import annotations

import json
import uuid

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from services.audit.app import create_app as create_audit
from services.audit.tables import ledger_records
from services.benefits.app import create_app as create_benefits
from services.benefits.tables import entitlements, household_snapshots, outbox as benefits_outbox, processed_events
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import TOPIC_BENEFITS, TOPIC_REGISTRY, AuditSettings, BenefitsSettings, RegistrySettings, dlq_topic
from shared.events import Envelope
from shared.outbox_relay import OutboxRelay
from shared.signing import EventSigner, b64url, envelope_signed_bytes, event_signer
from tests.helpers import eventually, household_body, running_app
from tests.integration.test_delivery_guarantees import read_topic


async def count(app, table) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def state_of(benefits, audit, household_id: str) -> dict:
    async with benefits.state.sessionmaker() as session:
        version = await session.scalar(select(household_snapshots.c.version)
                                       .where(household_snapshots.c.household_id == household_id))
    return {"benefits_version": version, "processed": await count(benefits, processed_events),
            "entitlements": await count(benefits, entitlements), "decisions": await count(benefits, benefits_outbox),
            "ledger": await count(audit, ledger_records)}


def forged_versions(genuine: dict, benefits_signer: EventSigner) -> dict[str, bytes]:
    """The attacker's messages: a registry event at version 101 for the genuine household."""
    def at_version_101(wire: dict) -> dict:
        wire = json.loads(json.dumps(wire))
        wire["id"] = str(uuid.uuid4())
        wire["sequence"] = wire["data"]["version"] = wire["data"]["household"]["version"] = 101
        wire["data"]["household"]["status"] = "exited"
        return wire

    unsigned = at_version_101(genuine)
    for field in ("signer", "signature", "ledger_signature"):
        unsigned.pop(field, None)

    stranger = EventSigner.from_private_key("registry", Ed25519PrivateKey.generate())  # a key nobody trusts
    unknown = at_version_101(genuine)
    unknown["signer"] = stranger.signer
    unknown["signature"] = stranger.sign(envelope_signed_bytes(unknown))
    unknown["ledger_signature"] = unknown["signature"]

    altered = at_version_101(genuine)  # the genuine signatures kept, the content changed

    wrong_source = at_version_101(genuine)  # a genuine key, but benefits' one, vouching for a registry event
    wrong_source["signer"] = benefits_signer.signer
    wrong_source["signature"] = benefits_signer.sign(envelope_signed_bytes(wrong_source))
    wrong_source["ledger_signature"] = wrong_source["signature"]
    return {"unsigned": json.dumps(unsigned).encode(), "unknown signer": json.dumps(unknown).encode(),
            "altered": json.dumps(altered).encode(), "source mismatch": json.dumps(wrong_source).encode()}


EXPECTED_REASON = {"unsigned": "unsigned", "unknown signer": "unknown signer", "altered": "bad signature",
                   "source mismatch": "may not sign"}


async def test_forged_events_are_dead_lettered_by_benefits_and_audit_and_change_nothing(databases, broker, tmp_path):
    common = {"var_dir": tmp_path, "kafka_bootstrap": broker.bootstrap, "log_json": False,
              "consumer_retry_backoff_s": 0.01}
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), run_consumer=False, **common)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"), evaluation_date="2020-06-30",
                                         **common)
    audit_settings = AuditSettings(database_url=await databases.url("audit"), checkpoint_schedule=False, **common)
    registry, benefits, audit = (create_registry(registry_settings), create_benefits(benefits_settings),
                                 create_audit(audit_settings))
    token = mint_token(registry_settings, "admin")
    async with running_app(registry, token) as client, running_app(benefits), \
            running_app(audit, mint_token(audit_settings, "audit:read")) as audit_client:
        created = await client.post("/v1/households", json=household_body(status="registered"))
        assert created.status_code == 201, created.text
        household_id = created.json()["id"]
        relay = OutboxRelay(registry.state.engine, registry_settings)
        assert await relay.publish_pending() == 1
        [genuine_record] = await read_topic(broker.bootstrap, TOPIC_REGISTRY, 1)
        genuine = json.loads(genuine_record.value)
        assert genuine["signer"].startswith("registry-") and genuine["signature"] and genuine["ledger_signature"]

        async def both_consumed(n: int):
            consumers = [getattr(app.state, "consumer", None) for app in (benefits, audit)]
            return all(c is not None and c.processed >= n for c in consumers)
        await eventually(lambda: both_consumed(1), timeout=60)
        before = await state_of(benefits, audit, household_id)
        assert before["benefits_version"] == 1 and before["ledger"] == 1 and before["entitlements"] > 0

        forged = forged_versions(genuine, event_signer(benefits_settings))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            for raw in forged.values():
                await producer.send_and_wait(TOPIC_REGISTRY, raw, key=household_id.encode())
            # ... and a decision benefits never made, signed with the registry's genuine key (audit only).
            decision = Envelope(source="benefits", type="entitlements.decided", subject=f"household/{household_id}",
                                data={"household_id": household_id, "assessments": [], "entitlements": [
                                    {"program": "industry.machinery", "change": "granted", "before": None,
                                     "after": {"amount": "99999.00"}}]})
            registry_key = event_signer(registry_settings)
            wire = json.loads(decision.model_copy(update={"signer": registry_key.signer}).to_bytes())
            wire["signature"] = wire["ledger_signature"] = registry_key.sign(envelope_signed_bytes(wire))
            forged_decision = json.dumps(wire).encode()
            await producer.send_and_wait(TOPIC_BENEFITS, forged_decision, key=household_id.encode())
        finally:
            await producer.stop()
        await eventually(lambda: both_consumed(1 + len(forged)), timeout=60)
        await eventually(lambda: _true(audit.state.consumer.processed >= 2 + len(forged)), timeout=60)

        assert benefits.state.consumer.dead_lettered == len(forged)
        assert audit.state.consumer.dead_lettered == len(forged) + 1
        [dead_decision] = await read_topic(broker.bootstrap, dlq_topic(TOPIC_BENEFITS), 1)
        assert dead_decision.value == forged_decision and b"may not sign 'benefits'" in dict(dead_decision.headers)["error"]
        assert await state_of(benefits, audit, household_id) == before  # nothing stored, nothing chained
        dead = await read_topic(broker.bootstrap, dlq_topic(TOPIC_REGISTRY), 2 * len(forged))
        reasons: dict[str, dict[str, str]] = {}
        for record in dead:
            headers = dict(record.headers)
            kind = next(k for k, raw in forged.items() if raw == record.value)
            reasons.setdefault(headers["consumer_group"].decode(), {})[kind] = headers["error"].decode()
        assert set(reasons) == {"benefits", "audit"}
        for group, by_kind in reasons.items():
            assert set(by_kind) == set(forged), group
            for kind, error in by_kind.items():
                assert "PoisonMessage" in error and EXPECTED_REASON[kind] in error, (group, kind, error)
        verdict = (await audit_client.get("/v1/audit/verify")).json()
        assert verdict["ok"] and verdict["records_checked"] == 1

        # The genuine version 2 is not taken for stale: the forged 101 never got in.
        current = (await client.get(f"/v1/households/{household_id}")).json()
        patched = await client.patch(f"/v1/households/{household_id}", json={"income": {"year": 2019, "per_capita_net": "4100.00"}},
                                     headers={"If-Match": str(current["version"])})
        assert patched.status_code == 200, patched.text
        assert await relay.publish_pending() == 1
        await relay.close()
        await eventually(lambda: both_consumed(2 + len(forged)), timeout=60)
        await eventually(lambda: _true(audit.state.consumer.processed >= 3 + len(forged)), timeout=60)
        after = await state_of(benefits, audit, household_id)
        assert after["benefits_version"] == 2 and after["ledger"] == 2
        stored = after["ledger"] - 2
        print(f"\nforged ({databases.backend}): {len(forged)} registry events sent ({', '.join(forged)}) + 1 benefits "
              f"decision signed by the registry key; {benefits.state.consumer.dead_lettered} dead-lettered by benefits, "
              f"{audit.state.consumer.dead_lettered} by audit, {stored} stored; genuine v2 accepted")


async def _true(value: bool) -> bool:
    return value
