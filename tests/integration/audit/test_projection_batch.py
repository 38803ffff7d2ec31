"""The read models folded in a batch at a time (``project_records``: the consumer's batches and ``rebuild``'s
pages) are exactly those the records projected one at a time give, over a ledger with late and stale
versions, exits with overrides, visits, villages, pairings, older one-per-entitlement records and partner
access."""
from __future__ import annotations

from sqlalchemy import select

from services.audit.ledger.service import append_events, chain_id_for
from services.audit.projections import PROJECTION_TABLES, project_records, rebuild
from shared.db import transaction
from tests.integration.audit.support import (TOPIC_OF, access_event, assessment_item, decided_event,
                                             entitlement_item, feed, legacy_assessment_event,
                                             legacy_entitlement_event, pairing_event, person, registry_event,
                                             snapshot, village_event)
from shared.config import TOPIC_ACCESS

IGNORED = {"id", "updated_at"}  # a row id the database numbers, the time a row was written


def the_ledger() -> list:
    one = snapshot("hh-1", cadres=["c-1"], members=[person("hh-1-p1", 1), person("hh-1-p2", 2, relation="spouse")])
    two = snapshot("hh-2", village="B", income=(2019, "3100.00"))
    four = snapshot("hh-4", village="C", relocated=True, moved_in=True,
                    members=[person("hh-4-p1", 4), person("hh-4-p2", 5, relation="child", deceased=True)])
    one_v2 = {**snapshot("hh-1", version=2, income=(2020, "4100.00"), cadres=["c-2"]),
              "members": one["members"]}
    one_v3 = {**one_v2, "version": 3, "status": "exited", "exit_date": "2020-05-01"}
    two_v2 = snapshot("hh-2", version=2, village="B", income=(2020, "5200.00"))
    return [
        registry_event("household.registered", one, time="2020-01-01T01:00:00",
                       step={"action": "register", "to_status": "registered", "at": "2019-12-30T00:00:00"}),
        registry_event("household.registered", two, time="2020-01-01T02:00:00"),
        registry_event("household.registered", four, time="2020-01-01T03:00:00"),
        decided_event("hh-1", [entitlement_item("dibao", "granted", amount="3000.00"),
                               entitlement_item("education", "granted", person_id="hh-1-p2", amount="1500.00")],
                      [assessment_item(False, ["income"])]),
        decided_event("hh-2", [entitlement_item("dibao", "granted", amount="2000.00")], [assessment_item(True)]),
        registry_event("visit.recorded", two, time="2020-02-01T00:00:00",
                       visit={"visit_id": "v-1", "visited_at": "2020-01-31T08:00:00Z", "cadre_id": "c-9"}),
        registry_event("household.updated", one_v2, time="2020-03-01T00:00:00",
                       step={"action": "propose_exit", "override": True, "reason": "收入达标",
                             "overridden_criteria": ["housing"], "at": "2020-03-01T00:00:00"}),
        village_event({"code": "360703105201", "name": "新村村（改）", "township_code": "360703105",
                       "township_name": "隆木乡", "population": 812, "exit_year": 2019}, version=2),
        registry_event("household.updated", two_v2, time="2020-03-02T00:00:00"),
        registry_event("household.updated", snapshot("hh-2", version=1, village="B", income=(2019, "9999.00")),
                       time="2020-03-03T00:00:00"),  # an older version arriving late
        decided_event("hh-1", [entitlement_item("dibao", "changed", amount="3300.00"),
                               entitlement_item("education", "revoked", person_id="hh-1-p2")],
                      [assessment_item(True)], version=2, time="2020-03-02T00:00:00"),
        decided_event("hh-2", [entitlement_item("dibao", "changed", amount="2500.00")], version=2),
        decided_event("hh-2", [entitlement_item("dibao", "changed", amount="1.00"),
                               entitlement_item("medical", "granted", amount="80.00")], version=1),  # late, older
        registry_event("household.exited", one_v3, time="2020-05-01T00:00:00",
                       step={"action": "approve_exit", "at": "2020-05-01T00:00:00"}),
        pairing_event("hh-3", "c-5", "paired", time="2020-01-05T00:00:00"),
        pairing_event("hh-1", "c-2", "unpaired", time="2020-06-01T00:00:00"),
        legacy_entitlement_event("hh-3", "housing", "granted", amount="20000.00", unit="once"),
        legacy_assessment_event("hh-3", False, ["housing"]),
        registry_event("household.exited", {**four, "version": 2, "status": "exited", "exit_date": "2020-04-01"},
                       time="2020-04-01T00:00:00", step={"action": "approve_exit", "at": "2020-04-01T00:00:00"}),
        access_event("bank-1", one["members"][0]["id_number"], "/v1/credit/eligibility", time="2020-06-01T00:00:00"),
        decided_event("hh-4", [entitlement_item("relocation", "granted", amount="10000.00", unit="once")],
                      [assessment_item(True)], version=2),
    ]


async def read_models(app) -> dict:
    tables = {}
    async with app.state.sessionmaker() as session:
        for table in PROJECTION_TABLES:
            columns = [c for c in table.columns if c.name not in IGNORED]
            rows = (await session.execute(select(*columns))).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def topic_of(envelope) -> str:
    return TOPIC_ACCESS if envelope.type.startswith("partner.") else TOPIC_OF[envelope.source]


async def test_batches_fold_the_ledger_into_the_read_models_one_record_at_a_time_does(audit, databases):
    from services.audit.app import create_app
    from tests.helpers import running_app

    envelopes = the_ledger()
    for envelope in envelopes:  # one record at a time, as the consumer's one-by-one handler does
        await feed(audit.app, envelope, topic=topic_of(envelope))
    one_by_one = await read_models(audit.app)
    assert len(one_by_one["audit_households"]) == 4 and one_by_one["audit_entitlement_decisions"]
    assert len(one_by_one["audit_pairings"]) >= 2 and one_by_one["audit_partner_access"]

    # the consumer's batch handler: consecutive records of one chain append and project as one batch
    settings = audit.settings.model_copy(update={"database_url": await databases.url("audit_batched")})
    batched = create_app(settings, id_hash_key="test-key", checkpoint_schedule=False)
    async with running_app(batched, None):
        runs: list[list] = []
        for envelope in envelopes:
            if runs and topic_of(runs[-1][0]) == topic_of(envelope):
                runs[-1].append(envelope)
            else:
                runs.append([envelope])
        assert max(len(run) for run in runs) >= 3
        for run in runs:
            async with transaction(batched.state.sessionmaker) as session:
                written = await append_events(session, run, chain_id_for(topic_of(run[0]), 0), "sha256")
                await project_records(session, written)
        assert await read_models(batched) == one_by_one

    # rebuild replays the ledger in pages, each page one batch
    for page_size in (5, 2000):
        assert await rebuild(audit.app.state.sessionmaker, page_size=page_size) == len(envelopes)
        assert await read_models(audit.app) == one_by_one
