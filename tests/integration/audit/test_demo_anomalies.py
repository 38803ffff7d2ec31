"""The demo district, loaded through the registry's own code, drives every anomaly rule on real events.

The registry's outbox rows (every event the demo load wrote) are fed in order to the benefits
consumer handler and to the audit consumer handler; the benefits decisions they cause are fed to
audit right after the registry event that caused them (what the relay and the consumers do, without
a broker). Then, per rule, the demo's true finding is flagged and its near miss is not.
"""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from jingzhun_cli.demo import DEMO_ANOMALIES, EVALUATION_DATE, load_demo_district
from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.tables import outbox as registry_outbox
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import running_app

AS_OF = EVALUATION_DATE.isoformat()


async def _rows_after(app, table, after: int) -> list:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(table).where(table.c.id > after).order_by(table.c.id))).all()


async def _feed_audit(audit, topic: str, envelope: Envelope) -> None:
    async with transaction(audit.state.sessionmaker) as session:
        await ingest(session, envelope, f"{topic}:0", audit.state.settings)


async def _pipe(registry, benefits, audit) -> dict[str, int]:
    """Every registry outbox row → benefits and audit; every benefits row it causes → audit."""
    counts = {"registry": 0, "benefits": 0}
    benefits_seen = 0
    for row in await _rows_after(registry, registry_outbox, 0):
        envelope = Envelope.model_validate_json(row.payload)
        await _feed_audit(audit, row.topic, envelope)
        async with transaction(benefits.state.sessionmaker) as session:
            await apply_registry_event(session, envelope, EVALUATION_DATE)
        counts["registry"] += 1
        for decision in await _rows_after(benefits, benefits_outbox, benefits_seen):
            await _feed_audit(audit, decision.topic, Envelope.model_validate_json(decision.payload))
            benefits_seen = decision.id
            counts["benefits"] += 1
    return counts


@pytest.fixture
async def demo_system(databases, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), **common)
    registry = create_registry(registry_settings)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), **common),
                         id_hash_key="k", checkpoint_schedule=False)
    token = mint_token(registry_settings, "audit:read")
    async with running_app(registry), running_app(benefits), running_app(audit, token) as client:
        report = await load_demo_district(registry.state.sessionmaker, registry_settings)
        again = await load_demo_district(registry.state.sessionmaker, registry_settings)
        piped = await _pipe(registry, benefits, audit)
        response = await client.get("/v1/supervision/anomalies", params={"as_of": AS_OF, "limit": 1000})
        assert response.status_code == 200, response.text
        yield {"report": report, "again": again, "piped": piped, "found": response.json(), "client": client}


def _flagged(found: dict, rule: str) -> set[str]:
    return {item["household_id"] for item in found["items"] if item["rule"] == rule}


async def test_demo_district_shows_every_rule_with_its_near_miss(demo_system):
    found, report = demo_system["found"], demo_system["report"]
    assert report.households_created == 200 and report.areas["created"] == 11
    assert report.transitions == 8 and report.unpairings == 2 and report.visits > 400
    # idempotent: the second load adds nothing
    again = demo_system["again"]
    assert (again.households_created, again.households_existing, again.visits, again.pairings) == (0, 200, 0, 0)
    assert again.areas == {"rows": 11, "created": 0, "updated": 0, "unchanged": 11}

    for rule, case in DEMO_ANOMALIES.items():
        flagged = _flagged(found, rule)
        for role in ("finding", "near_miss"):
            expected = [h for h in (case.get(role), (case.get("also") or {}).get(role)) if h]
            for household_id in expected:
                assert (household_id in flagged) == (role == "finding"), (rule, role, household_id, sorted(flagged))
    counts = found["counts"]
    print("anomalies on the demo at", AS_OF, counts, "events", demo_system["piped"])
    for rule in ("exit_overridden", "relocated_exit_not_moved_in", "no_recent_visit", "above_line_not_exited",
                 "cadre_unpaired_before_exit"):
        assert counts[rule] >= 1
    assert counts["exit_overridden"] == 1 and counts["relocated_exit_not_moved_in"] == 1
    assert counts["above_line_not_exited"] == 1 and counts["cadre_unpaired_before_exit"] == 1
    # the prevented anomalies stay prevented on real events
    assert counts["duplicate_id_number"] == 0 and counts["entitlement_to_ineligible_person"] == 0
    # one load per backend (it takes a while): the detailed checks share it
    await _findings_carry_business_dates(demo_system)
    await _areas_give_village_incidence_and_exits_span_2016_to_2020(demo_system)


async def _findings_carry_business_dates(demo_system):
    items = {(i["rule"], i["household_id"]): i for i in demo_system["found"]["items"]}
    stale = items[("no_recent_visit", "hh-demo-0185")]["facts"]
    assert (stale["last_visit"], stale["days"], stale["counted_from"]) == ("2020-03-31", 91, "last_visit")
    never = items[("no_recent_visit", "hh-demo-0187")]["facts"]
    assert (never["last_visit"], never["counted_from"], never["identified_year"]) == (None, "identified_year", 2015)
    assert never["days"] == (EVALUATION_DATE - date(2015, 12, 31)).days
    override = items[("exit_overridden", "hh-demo-0181")]["facts"]
    assert override["exit_date"] == "2019-11-28" and override["override"] is True
    assert override["override_reasons"] == ["乡镇党委会议研究认定已稳定脱贫"] and override["deciders"] == ["demo-data"]
    assert set(override["unmet"]) >= {"income"}
    unpaired = items[("cadre_unpaired_before_exit", "hh-demo-0191")]["facts"]
    assert (unpaired["cadre_id"], unpaired["unpaired_on"], unpaired["replaced"]) == ("cadre-demo-01", "2018-09-15", True)
    relocated = items[("relocated_exit_not_moved_in", "hh-demo-0183")]["facts"]
    assert relocated["exit_date"] == "2018-12-10" and relocated["moved_in_at_exit"] is False
    above = items[("above_line_not_exited", "hh-demo-0189")]["facts"]["years"]
    assert [(y["year"], y["income"], y["line"]) for y in above] == [(2018, "3600.00", "2995"), (2019, "4300.00", "3218")]
    # nothing is counted from the time the events were written or ingested (2020 dates throughout)
    for item in demo_system["found"]["items"]:
        if item["rule"] == "no_recent_visit":
            assert 90 < item["facts"]["days"] < 3000


async def _areas_give_village_incidence_and_exits_span_2016_to_2020(demo_system):
    client = demo_system["client"]
    progress = (await client.get("/v1/supervision/progress", params={"area": "360703"})).json()
    villages = {v["village_code"]: v for v in progress["villages"]}
    assert set(villages) == {"360703105201", "360703105202", "360703102203", "360703102204", "360703110205"}
    xincun = villages["360703105201"]
    assert xincun["population"] == 1980 and xincun["incidence"] is not None
    assert xincun["exit_indicators"]["indicators"]["poverty_incidence_pct"] in ("4.80", "4.8")
    ganzhou = next(a for a in progress["areas"] if a["region"] == "3607")
    exited = {row["year"]: row["exited_households"] for row in ganzhou["years"]}
    assert all(exited.get(year, 0) > 0 for year in range(2016, 2021)), exited
    history = (await client.get("/v1/audit/households/hh-demo-0181/history")).json()["items"]
    times = [i["time"][:10] for i in history if i["type"].startswith("household.")]
    assert times  # the events themselves are stamped when written; the facts above carry business dates
