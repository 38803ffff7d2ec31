"""Real registry and benefits code feeding the audit handler: registry API writes → outbox rows →
benefits handler → benefits outbox rows → audit ingest, all in-process on one backend."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

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
        assert types[0] == "household.registered" and all(i["intact"] for i in history["items"])
        decided = [i for i in history["items"] if i["type"] == "entitlements.decided"]
        # one decision event per household version that changed something (created, then patched)
        assert 1 <= len(decided) <= 2 and not {"entitlement.granted", "assessment.changed"} & set(types)
        first = decided[0]["decision"]
        assert first["changes"]["granted"] == len(first["entitlements"]) > 1 and first["policy"] == "nankang-2020"
        assert first["programs"] == sorted({e["program"] for e in first["entitlements"]})
        assert "exit_readiness" in first["kinds"] and all(e["amount_after"] for e in first["entitlements"])
        stats = (await aud.get("/v1/audit/stats/entitlements", params={"area_level": "county"})).json()
        assert stats["current"] and all(row["area"] == "360703" for row in stats["current"])
        assert (await aud.get("/v1/audit/verify")).json()["ok"]
        # the read models are derived: replaying the ledger reproduces the same findings
        before = (await aud.get("/v1/supervision/anomalies", params={"as_of": "2020-06-30"})).json()["counts"]
        await rebuild(audit.state.sessionmaker)
        after = (await aud.get("/v1/supervision/anomalies", params={"as_of": "2020-06-30"})).json()["counts"]
        assert before == after and after["above_line_not_exited"] == 1


async def test_one_registry_change_is_one_decided_event_listing_every_entitlement(databases, tmp_path):
    """benefits stages one ``entitlements.decided`` for a household version that grants several entitlements;
    audit folds it into one decision row per programme (stats by programme), and a redelivery is a no-op."""
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), **common),
                         id_hash_key="k", checkpoint_schedule=False)
    admin = mint_token(AuditSettings(**common), "admin")
    snapshot = {**household_body(status="registered", income={"year": 2019, "per_capita_net": "3000.00"}),
                "id": "hh-decided", "version": 1}
    snapshot["members"] = [{**m, "id": f"p{i}"} for i, m in enumerate(snapshot["members"], 1)]
    change = Envelope(source="registry", type="household.created", subject="household/hh-decided", sequence=1,
                      data={"household": snapshot, "version": 1})
    async with running_app(benefits), running_app(audit, admin) as aud:
        async with transaction(benefits.state.sessionmaker) as session:
            decisions = await apply_registry_event(session, change, date(2020, 6, 30))
        events, _ = await drain(benefits, benefits_outbox, 0)
        assert [e.type for _, e in events] == ["entitlements.decided"]
        decided = events[0][1]
        items = decided.data["entitlements"]
        assert decided.subject == "household/hh-decided" and decided.sequence == 1
        assert decided.data["cause_event_id"] == change.id and decided.data["household_version"] == 1
        assert len(items) > 3 and decisions == len(items) + len(decided.data["assessments"])
        assert all(i["change"] == "granted" and i["before"] is None and i["after"]["explanation"]
                   and i["after"]["source"] for i in items)
        programs = {i["program"] for i in items}
        for _ in range(2):  # the second time is a redelivery: appended and projected once
            async with transaction(audit.state.sessionmaker) as session:
                await ingest(session, decided, "jz.benefits.v1:0", audit.state.settings)
        stats = (await aud.get("/v1/audit/stats/entitlements", params={"area_level": "county"})).json()
        current = {row["program"]: row for row in stats["current"]}
        assert set(current) == programs
        for program in programs:
            mine = [i for i in items if i["program"] == program]
            assert current[program]["entitlements"] == len(mine)
            assert current[program]["amount"] == f"{sum(Decimal(i['after']['amount']) for i in mine):.2f}"
        granted = {row["program"]: row["granted"] for row in stats["decisions"]}
        assert granted == {p: sum(1 for i in items if i["program"] == p) for p in programs}
        one = next(iter(sorted(programs)))
        by_programme = (await aud.get("/v1/audit/stats/entitlements",
                                      params={"area_level": "county", "program": one})).json()
        assert [row["program"] for row in by_programme["current"]] == [one]
        records = (await aud.get("/v1/audit/records", params={"type": "entitlements.decided"})).json()["items"]
        assert len(records) == 1
        # the read models are derived: replaying the ledger gives the same figures
        await rebuild(audit.state.sessionmaker)
        again = (await aud.get("/v1/audit/stats/entitlements", params={"area_level": "county"})).json()
        assert again["current"] == stats["current"] and again["decisions"] == stats["decisions"]
