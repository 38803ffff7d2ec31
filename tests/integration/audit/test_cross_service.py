"""Real registry and benefits code feeding the audit handler: registry API writes → outbox rows →
benefits handler → benefits outbox rows → audit ingest, all in-process on one backend."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.audit.projections import rebuild
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.tables import outbox as registry_outbox
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import household_body, running_app


async def drain(source_app, table, after: int) -> tuple[list[tuple[str, Envelope]], int]:
    async with source_app.state.sessionmaker() as session:
        rows = (await session.execute(select(table).where(table.c.id > after).order_by(table.c.id))).all()
    return [(r.topic, Envelope.model_validate_json(r.payload)) for r in rows], (rows[-1].id if rows else after)


async def test_real_registry_and_benefits_events_drive_audit_rules(databases, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    registry = create_registry(RegistrySettings(database_url=await databases.url("registry"), **common))
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), **common),
                         id_hash_key="k", checkpoint_schedule=False)
    admin = mint_token(RegistrySettings(**common), "admin")
    async with running_app(registry, admin) as reg, running_app(benefits), running_app(audit, admin) as aud:
        rich = household_body(status="registered", income={"year": 2018, "per_capita_net": "3500.00"})
        poor = household_body(status="registered", income={"year": 2018, "per_capita_net": "2000.00"})
        poor["members"] = [{**m, "id_number": None} for m in poor["members"]]
        rich_id = (await reg.post("/v1/households", json=rich)).json()["id"]
        poor_id = (await reg.post("/v1/households", json=poor)).json()["id"]
        for hid in (rich_id, poor_id):
            current = (await reg.get(f"/v1/households/{hid}")).json()
            amount = "4100.00" if hid == rich_id else "2100.00"
            patched = await reg.patch(f"/v1/households/{hid}", json={"income": {"year": 2019, "per_capita_net": amount}},
                                      headers={"If-Match": str(current["version"])})
            assert patched.status_code == 200, patched.text

        registry_events, _ = await drain(registry, registry_outbox, 0)
        for partition, (topic, envelope) in enumerate(registry_events):
            async with transaction(benefits.state.sessionmaker) as session:
                await apply_registry_event(session, envelope, date(2020, 6, 30))
            async with transaction(audit.state.sessionmaker) as session:
                await ingest(session, envelope, f"{topic}:0", audit.state.settings)
        benefit_events, _ = await drain(benefits, benefits_outbox, 0)
        assert benefit_events, "benefits published decisions"
        for topic, envelope in benefit_events:
            async with transaction(audit.state.sessionmaker) as session:
                await ingest(session, envelope, f"{topic}:0", audit.state.settings)

        found = (await aud.get("/v1/supervision/anomalies",
                               params={"rule": "above_line_not_exited", "as_of": "2020-06-30"})).json()["items"]
        assert [f["household_id"] for f in found] == [rich_id]  # positive; the poorer household is not flagged
        history = (await aud.get(f"/v1/audit/households/{rich_id}/history")).json()
        types = [i["type"] for i in history["items"]]
        assert types[0] == "household.registered" and "entitlement.granted" in types
        assert "assessment.changed" in types and all(i["intact"] for i in history["items"])
        stats = (await aud.get("/v1/audit/stats/entitlements", params={"area_level": "county"})).json()
        assert stats["current"] and all(row["area"] == "360703" for row in stats["current"])
        assert (await aud.get("/v1/audit/verify")).json()["ok"]
        # the read models are derived: replaying the ledger reproduces the same findings
        before = (await aud.get("/v1/supervision/anomalies", params={"as_of": "2020-06-30"})).json()["counts"]
        await rebuild(audit.state.sessionmaker)
        after = (await aud.get("/v1/supervision/anomalies", params={"as_of": "2020-06-30"})).json()["counts"]
        assert before == after and after["above_line_not_exited"] == 1
