"""Issue 13, audit side: the monitoring loop (docs/monitoring.md) in the ledger, the household's decision history,
the monitoring projections, ``GET /v1/supervision/monitoring`` and the four monitoring anomaly rules (each
positive and negative), fed with registry envelopes built and signed exactly as the contract describes."""
from __future__ import annotations

import copy
import uuid

from sqlalchemy import func, select

from services.audit.monitoring.service import range_line
from services.audit.tables import audit_monitoring_leads, audit_monitoring_objects
from shared.events import Envelope
from tests.integration.audit.support import feed, registry_event, snapshot, t

AREA = {"region_code": "360703", "township_code": "360703105", "village_code": "360703105201"}
OTHER_AREA = {"region_code": "360703", "township_code": "360703106", "village_code": "360703106202"}
IDENTIFICATION = ("risk_warning", "home_verification", "household_commitment", "information_comparison",
                  "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry")
ELIMINATION = ("propose_elimination", "home_verification", "democratic_appraisal", "village_notice",
               "township_confirmation", "county_confirmation")


def at(day: str, hour: int = 10) -> str:
    """A business instant in China time."""
    return f"{day}T{hour:02d}:00:00+08:00"


def lead_event(lead_id: str, household_id: str, reported: str, *, status: str = "open", version: int = 1,
               channel: str = "cadre_visit", area: dict = AREA, merged_into: str | None = None,
               object_id: str | None = None) -> Envelope:
    lead = {"id": lead_id, "client_lead_id": str(uuid.uuid4()), "household_id": household_id, "channel": channel,
            "risk_causes": ["illness"], "reported_at": at(reported), "recorded_at": at(reported, 11),
            "recorded_by": "cadre-7", "status": status, "merged_into": merged_into,
            "monitoring_object_id": object_id, "notes": "住院", "source_event_id": None}
    return Envelope(source="registry", type="monitoring.lead_recorded", subject=f"monitoring/{lead_id}",
                    sequence=version, time=t(at(reported, 11)), actor="cadre-7",
                    data={"lead": lead, "area": area})


class Case:
    """A monitoring object as the registry publishes it: every step a new version and a new event."""

    def __init__(self, object_id: str, household_id: str, lead_ids: list[str], opened: str, *,
                 category: str = "marginal_at_risk", area: dict = AREA):
        self.area = area
        self.object = {"id": object_id, "household_id": household_id, "case_no": 1,
                       "category": category, "channel": "cadre_visit", "lead_ids": lead_ids,
                       "risk_causes": ["illness"], "assigned_cadre": "cadre-7", "procedure": "identification",
                       "step": "risk_warning", "status": "identifying", "steps": [], "measures": [],
                       "opened_at": at(opened), "identified_at": None, "first_measure_at": None,
                       "eliminated_at": None, "version": 0}

    def _event(self, type_: str, when: str, actor: str) -> Envelope:
        self.object["version"] += 1
        return Envelope(source="registry", type=type_, subject=f"monitoring/{self.object['id']}",
                        sequence=self.object["version"], time=t(when), actor=actor,
                        data={"object": copy.deepcopy(self.object), "area": self.area, "labour_capacity": "has_labour"})

    def opened(self) -> Envelope:
        return self._event("monitoring.object_opened", self.object["opened_at"], "office-1")

    def step(self, name: str, day: str, *, actor: str = "township-3", evidence: dict | None = None,
             procedure: str | None = None, hour: int = 10) -> Envelope:
        procedure = procedure or self.object["procedure"]
        when = at(day, hour)
        self.object["steps"].append({"procedure": procedure, "step": name, "actor": actor, "evidence": evidence or {},
                                     "at": when})
        self.object.update(procedure=procedure, step=name)
        type_ = "monitoring.step_completed"
        if name == "data_entry":
            self.object.update(status="monitored", identified_at=when)
        elif name == "propose_elimination":
            self.object["status"] = "eliminating"
        elif name == "county_confirmation":
            self.object.update(status="eliminated", eliminated_at=when)
            type_ = "monitoring.risk_eliminated"
        return self._event(type_, when, actor)

    def identify(self, day: str) -> list[Envelope]:
        """The nine identification steps, the last (data entry) on ``day``."""
        opened = self.object["opened_at"][:10]
        return [self.step(name, day if name == "data_entry" else opened, hour=10 + i,
                          actor="county-2" if name == "county_approval" else f"actor-{i}")
                for i, name in enumerate(IDENTIFICATION)]

    def measure(self, day: str, kind: str = "employment") -> Envelope:
        when = at(day)
        self.object["measures"].append({"id": f"m-{uuid.uuid4().hex[:8]}", "type": kind, "risk_cause": "illness",
                                        "responsible": "township-3", "start_date": day, "status": "in_progress",
                                        "recorded_at": when, "recorded_by": "cadre-7"})
        self.object["first_measure_at"] = self.object["first_measure_at"] or when
        return self._event("monitoring.measure_recorded", when, "cadre-7")

    def update_measure(self, index: int, day: str, *, actor: str = "township-3", **changes) -> Envelope:
        """``monitoring.measure_updated``: the measure changed (status by the registry's table), who and when."""
        when = at(day)
        measure = self.object["measures"][index]
        if "status" in changes and changes["status"] != measure["status"]:
            measure.setdefault("status_history", []).append({"from": measure["status"], "to": changes["status"],
                                                             "at": when, "by": actor})
        measure.update(changes, updated_at=when, updated_by=actor)
        return self._event("monitoring.measure_updated", when, actor)

    def eliminate(self, day: str, assessment: dict | None) -> list[Envelope]:
        out = []
        for i, name in enumerate(ELIMINATION):
            evidence = {"benefits_assessment": assessment} if name == "county_confirmation" and assessment else {}
            out.append(self.step(name, day, procedure="elimination", evidence=evidence, hour=9 + i,
                                 actor="county-9" if name == "county_confirmation" else f"actor-e{i}"))
        return out

    def dismiss(self, day: str) -> Envelope:
        when = at(day)
        self.object["steps"].append({"procedure": "identification", "step": "home_verification",
                                     "actor": "township-3", "evidence": {"finding": "no risk"}, "at": when})
        self.object.update(status="dismissed", step="home_verification")
        return self._event("monitoring.object_dismissed", when, "township-3")


def assessment(months: int | None, eligible: bool = True) -> dict:
    return {"household_id": "x", "eligible": eligible, "months_above_range": months,
            "above_range_since": "2021-01-01", "explanation": [], "source": {"seed": "guideline"},
            "as_of": "2021-09-30"}


async def report(audit, **params) -> dict:
    response = await audit.get("/v1/supervision/monitoring", params={"as_of": "2021-06-30", **params})
    assert response.status_code == 200, response.text
    return response.json()


async def anomalies(audit, rule: str, as_of: str, **params) -> list[dict]:
    response = await audit.get("/v1/supervision/anomalies", params={"rule": rule, "as_of": as_of, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


# ---------------------------------------------------------------- ledger and history

async def test_every_monitoring_step_is_in_the_ledger_and_the_households_history(audit):
    hid = "hh-mon-1"
    await feed(audit.app, registry_event("household.registered", snapshot(hid, income=(2020, "5200.00")),
                                         time="2021-01-05T00:00:00"))
    case = Case("mo-1", hid, ["ld-1"], "2021-03-05")
    events = [lead_event("ld-1", hid, "2021-03-01"), case.opened(), *case.identify("2021-03-11"),
              case.measure("2021-03-15", "medical_assistance")]
    written = await feed(audit.app, *events)
    assert all(w is not None for w in written)

    records = (await audit.get("/v1/audit/records", params={"subject": "monitoring/mo-1"})).json()["items"]
    assert [r["type"] for r in records] == (["monitoring.object_opened"] + ["monitoring.step_completed"] * 9
                                            + ["monitoring.measure_recorded"])
    assert [r["data"]["object"]["version"] for r in records] == list(range(1, 12))
    assert (await audit.get("/v1/audit/verify")).json()["ok"] is True

    history = (await audit.get(f"/v1/audit/households/{hid}/history")).json()
    items = history["items"]
    assert [i["type"] for i in items] == (["household.registered", "monitoring.lead_recorded",
                                           "monitoring.object_opened"] + ["monitoring.step_completed"] * 9
                                          + ["monitoring.measure_recorded"])
    assert {i["record_id"] for i in items[1:]} == {w["id"] for w in written}
    lead = items[1]["decision"]["monitoring"]
    assert lead["lead_id"] == "ld-1" and lead["channel"] == "cadre_visit" and lead["recorded_by"] == "cadre-7"
    assert lead["line"] == "lead ld-1 (cadre_visit) reported 2021-03-01, recorded by cadre-7: open"
    approval = items[10]["decision"]["monitoring"]
    assert approval["step"] == {"procedure": "identification", "step": "county_approval", "actor": "county-2",
                                "at": "2021-03-05T17:00:00+08:00"}
    assert approval["line"].startswith("monitoring object mo-1 (case 1): identification step county_approval by "
                                       "county-2 on 2021-03-05; status identifying")
    assert items[11]["decision"]["monitoring"]["status"] == "monitored"
    measure = items[12]["decision"]["monitoring"]["measure"]
    assert measure["type"] == "medical_assistance" and measure["responsible"] == "township-3"
    assert items[12]["actor"] == "cadre-7" and all(i["intact"] for i in items)

    # paging through the history keeps the monitoring records in their place
    first = (await audit.get(f"/v1/audit/households/{hid}/history", params={"limit": 5})).json()
    second = (await audit.get(f"/v1/audit/households/{hid}/history",
                              params={"limit": 20, "cursor": first["next_cursor"]})).json()
    assert [i["record_id"] for i in first["items"] + second["items"]] == [i["record_id"] for i in items]
    # another household's history holds none of them
    await feed(audit.app, registry_event("household.registered", snapshot("hh-mon-2", seq=3)))
    other = (await audit.get("/v1/audit/households/hh-mon-2/history")).json()["items"]
    assert [i["type"] for i in other] == ["household.registered"]

    # the dashboard's household page reads the same history
    page = await audit.get(f"/dashboard/households/{hid}", params={"as_of": "2021-06-30"})
    assert page.status_code == 200
    assert "监测帮扶 (monitoring): monitoring object mo-1 (case 1): identification step data_entry" in page.text


async def test_a_measure_update_is_in_the_history_and_the_projection(audit):
    hid = "hh-mon-9"
    case = Case("mo-9", hid, ["ld-9"], "2021-03-05")
    await feed(audit.app, lead_event("ld-9", hid, "2021-03-01"), case.opened(), *case.identify("2021-03-11"),
               case.measure("2021-03-15", "medical"))
    updated = case.update_measure(0, "2021-05-20", status="completed", end_date="2021-05-20")
    [written] = await feed(audit.app, updated)
    assert written is not None
    async with audit.app.state.sessionmaker() as session:
        row = (await session.execute(select(audit_monitoring_objects)
                                     .where(audit_monitoring_objects.c.id == "mo-9"))).one()
    assert (row.version, row.record_id, row.measures, row.status) == (12, written["id"], 1, "monitored")
    assert row.first_measure_at is not None  # still the recording's time
    items = (await audit.get(f"/v1/audit/households/{hid}/history")).json()["items"]
    assert [i["type"] for i in items[-2:]] == ["monitoring.measure_recorded", "monitoring.measure_updated"]
    decision = items[-1]["decision"]["monitoring"]
    measure_id = case.object["measures"][0]["id"]
    assert decision["measure"] == {"id": measure_id, "type": "medical", "risk_cause": "illness",
                                   "responsible": "township-3", "start_date": "2021-03-15",
                                   "end_date": "2021-05-20", "status": "completed",
                                   "updated_at": at("2021-05-20"), "updated_by": "township-3"}
    assert decision["line"] == (f"monitoring object mo-9 (case 1): measure {measure_id} (medical for illness) now "
                                "completed, responsible township-3, ended 2021-05-20, changed by township-3 on "
                                "2021-05-20")
    assert items[-1]["actor"] == "township-3" and all(i["intact"] for i in items)
    # a later change to it moves the projection on; the older one delivered late (under a new event id) does not
    # roll it back
    again = case.update_measure(0, "2021-05-21", notes="结算完毕")
    stale = copy.deepcopy(updated)
    stale.id, stale.signature = str(uuid.uuid4()), None
    [later, late] = await feed(audit.app, again, stale)
    assert later is not None and late is not None  # both in the ledger
    async with audit.app.state.sessionmaker() as session:
        row = (await session.execute(select(audit_monitoring_objects)
                                     .where(audit_monitoring_objects.c.id == "mo-9"))).one()
    assert (row.version, row.record_id) == (13, later["id"])


async def test_projection_is_idempotent_and_guarded_by_the_objects_version(audit):
    hid = "hh-mon-3"
    case = Case("mo-3", hid, ["ld-3"], "2021-03-05")
    opened = case.opened()
    steps = case.identify("2021-03-11")
    await feed(audit.app, lead_event("ld-3", hid, "2021-03-01"), opened, *steps)
    again = copy.deepcopy(steps[-1])
    assert await feed(audit.app, again) == [None]  # the same event id again: nothing written, nothing projected
    async with audit.app.state.sessionmaker() as session:
        row = (await session.execute(select(audit_monitoring_objects)
                                     .where(audit_monitoring_objects.c.id == "mo-3"))).one()
        lead = (await session.execute(select(audit_monitoring_leads)
                                      .where(audit_monitoring_leads.c.id == "ld-3"))).one()
        assert await session.scalar(select(func.count()).select_from(audit_monitoring_objects)) == 1
    assert (row.version, row.status, row.step, row.measures) == (10, "monitored", "data_entry", 0)
    assert row.identified_at is not None and row.lead_reported_at is not None
    assert (lead.status, lead.monitoring_object_id) == ("verifying", "mo-3")  # a case was opened from it

    # a late, older version (a redelivered v2 under a new event id) never rolls the object back
    stale = copy.deepcopy(steps[0])
    stale.id, stale.signature = str(uuid.uuid4()), None
    [written] = await feed(audit.app, stale)
    assert written is not None  # in the ledger like any event
    async with audit.app.state.sessionmaker() as session:
        row = (await session.execute(select(audit_monitoring_objects)
                                     .where(audit_monitoring_objects.c.id == "mo-3"))).one()
    assert (row.version, row.status, row.step) == (10, "monitored", "data_entry")

    # the object before its lead (another partition): the lead is known as verifying, and its report date
    # still reaches the object's lead-to-identification start
    late = Case("mo-4", "hh-mon-4", ["ld-4"], "2021-04-02")
    await feed(audit.app, late.opened())
    await feed(audit.app, lead_event("ld-4", "hh-mon-4", "2021-04-01"), partition=1)
    async with audit.app.state.sessionmaker() as session:
        lead = (await session.execute(select(audit_monitoring_leads)
                                      .where(audit_monitoring_leads.c.id == "ld-4"))).one()
        obj = (await session.execute(select(audit_monitoring_objects)
                                     .where(audit_monitoring_objects.c.id == "mo-4"))).one()
    assert (lead.status, lead.monitoring_object_id, lead.channel) == ("verifying", "mo-4", "cadre_visit")
    assert obj.lead_reported_at is not None


# ---------------------------------------------------------------- the report

async def seed_district(audit) -> None:
    """Three identified cases, one still identifying, one dismissed, one eliminated, leads open and merged."""
    a = Case("mo-a", "hh-a", ["ld-a"], "2021-03-05", category="unstable_exited")
    b = Case("mo-b", "hh-b", ["ld-b"], "2021-03-06")
    c = Case("mo-c", "hh-c", ["ld-c"], "2021-03-04", category="sudden_hardship")
    d = Case("mo-d", "hh-d", ["ld-d"], "2021-06-01")
    e = Case("mo-e", "hh-e", ["ld-e"], "2021-03-10")
    await feed(audit.app, lead_event("ld-a", "hh-a", "2021-03-01"), a.opened(), *a.identify("2021-03-11"),
               a.measure("2021-03-15"),
               lead_event("ld-b", "hh-b", "2021-03-02"), b.opened(), *b.identify("2021-03-22"),
               b.measure("2021-04-01"), b.measure("2021-04-03", "industry"),
               lead_event("ld-c", "hh-c", "2021-03-03"), c.opened(), *c.identify("2021-03-07"),
               lead_event("ld-d", "hh-d", "2021-05-30"), d.opened(), d.step("risk_warning", "2021-06-01"),
               d.step("home_verification", "2021-06-02"),
               lead_event("ld-e", "hh-e", "2021-03-09"), e.opened(), e.dismiss("2021-03-20"),
               # open leads: one for 45 days, one for 10; one merged into a case; one in another township
               lead_event("ld-old", "hh-f", "2021-05-16", channel="self_report"),
               lead_event("ld-new", "hh-g", "2021-06-20", channel="department"),
               lead_event("ld-merged", "hh-a", "2021-04-01", status="merged", merged_into="mo-a"),
               lead_event("ld-far", "hh-h", "2021-05-01", area=OTHER_AREA))


async def test_the_monitoring_report_counts_times_and_overdue_items(audit):
    await seed_district(audit)
    found = await report(audit, area="360703105")
    objects = found["objects"]
    assert objects["total"] == 5
    assert objects["by_category_status"] == [
        {"category": "unstable_exited", "status": "monitored", "objects": 1},
        {"category": "marginal_at_risk", "status": "identifying", "objects": 1},
        {"category": "marginal_at_risk", "status": "monitored", "objects": 1},
        {"category": "marginal_at_risk", "status": "dismissed", "objects": 1},
        {"category": "sudden_hardship", "status": "monitored", "objects": 1}]
    assert objects["by_status"] == {"identifying": 1, "monitored": 3, "eliminating": 0, "eliminated": 0,
                                    "dismissed": 1}
    assert objects["by_category"] == {"unstable_exited": 1, "marginal_at_risk": 3, "sudden_hardship": 1}
    assert objects["by_step"] == [{"procedure": "identification", "step": "home_verification", "objects": 2},
                                  {"procedure": "identification", "step": "data_entry", "objects": 3}]
    # lead → identification: 10, 20 and 4 days; identification → first measure: 4 and 10 days
    assert found["durations"]["lead_to_identification"] == {"n": 3, "median_days": 10.0, "p90_days": 20.0}
    assert found["durations"]["identification_to_first_measure"] == {"n": 2, "median_days": 7.0, "p90_days": 10.0}
    assert found["durations"]["lead_to_first_measure"] == {"n": 2, "median_days": 22.0, "p90_days": 30.0}
    assert found["leads"] == {"total": 8, "by_status": {"verifying": 5, "open": 2, "merged": 1}, "open": 2,
                              "overdue": 1}
    [overdue] = found["overdue_leads"]["items"]
    assert (overdue["lead_id"], overdue["household_id"], overdue["days_open"], overdue["reported_on"],
            overdue["channel"]) == ("ld-old", "hh-f", 45, "2021-05-16", "self_report")
    [bare] = found["objects_without_measures"]["items"]
    assert (bare["object_id"], bare["household_id"], bare["days_since_identification"]) == ("mo-c", "hh-c", 115)
    assert found["settings"] == {"lead_days": 15, "measure_grace_days": 15}

    # as of an earlier day: status and step as they were then, and what was not yet reported is not there
    early = await report(audit, area="360703105", as_of="2021-03-08")
    assert early["objects"]["by_status"] == {"identifying": 2, "monitored": 1, "eliminating": 0, "eliminated": 0,
                                             "dismissed": 0}
    assert early["durations"]["lead_to_identification"] == {"n": 1, "median_days": 4.0, "p90_days": 4.0}
    assert early["leads"]["open"] == 0 and early["overdue_leads"]["items"] == []

    # the county sees the other township's lead too; the other township sees only it
    county = await report(audit, area="360703")
    assert [i["lead_id"] for i in county["overdue_leads"]["items"]] == ["ld-far", "ld-old"]
    far = await report(audit, area="360703106")
    assert far["objects"]["total"] == 0 and [i["lead_id"] for i in far["overdue_leads"]["items"]] == ["ld-far"]

    # paging the overdue list
    page1 = await report(audit, area="360703", limit=1)
    page2 = await report(audit, area="360703", limit=1, cursor=page1["overdue_leads"]["next_cursor"])
    assert [i["lead_id"] for i in page1["overdue_leads"]["items"] + page2["overdue_leads"]["items"]] == \
        ["ld-far", "ld-old"]
    assert page2["overdue_leads"]["next_cursor"] is None


async def test_the_report_is_area_scoped_and_rejects_bad_input(audit):
    await seed_district(audit)
    township = audit.token_for("audit:read", area="360703106")
    mine = await audit.get("/v1/supervision/monitoring", params={"as_of": "2021-06-30"}, headers=township)
    assert mine.status_code == 200 and mine.json()["area"] == "360703106"
    assert [i["lead_id"] for i in mine.json()["overdue_leads"]["items"]] == ["ld-far"]
    outside = await audit.get("/v1/supervision/monitoring", params={"area": "360703105"}, headers=township)
    assert outside.status_code == 403 and outside.json()["detail"] == "Your token is limited to area 360703106."
    bad = await audit.get("/v1/supervision/monitoring", params={"as_of": "2021-02-30"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    cursor = await audit.get("/v1/supervision/monitoring", params={"cursor": "garbage"})
    assert cursor.status_code == 400 and cursor.json()["title"] == "Invalid cursor"
    scope = await audit.get("/v1/supervision/monitoring", headers=audit.token_for("registry:read"))
    assert scope.status_code == 403


# ---------------------------------------------------------------- the four rules, positive and negative

async def test_monitoring_lead_not_verified(audit):
    await feed(audit.app, lead_event("ld-1", "hh-1", "2021-03-01"),                  # open
               lead_event("ld-2", "hh-2", "2021-03-01", status="merged", merged_into="mo-x"),
               lead_event("ld-3", "hh-3", "2021-03-01"))
    case = Case("mo-3", "hh-3", ["ld-3"], "2021-03-10")                              # verified in time
    await feed(audit.app, case.opened())
    rule = "monitoring_lead_not_verified"
    assert await anomalies(audit, rule, "2021-03-16") == []                          # 15 days: not yet too long
    [found] = await anomalies(audit, rule, "2021-03-17")                             # 16 days
    assert found["household_id"] == "hh-1" and found["village_code"] == AREA["village_code"]
    assert found["facts"] == {"lead_id": "ld-1", "channel": "cadre_visit", "risk_causes": ["illness"],
                              "reported_on": "2021-03-01", "days": 16, "threshold_days": 15}
    assert found["detail"] == ("lead ld-1 (cadre_visit) reported on 2021-03-01 is still not verified: "
                               "16 days > 15")
    assert found["severity"] == "medium" and "中农组发〔2021〕7号" in found["basis"]
    assert len(found["evidence"]["record_ids"]) == 1 and len(found["evidence"]["event_ids"]) == 1
    # a case opened from it later: it was open on 2021-03-17 but not on the day after
    late = Case("mo-1", "hh-1", ["ld-1"], "2021-03-18")
    await feed(audit.app, late.opened())
    assert [f["facts"]["lead_id"] for f in await anomalies(audit, rule, "2021-03-17")] == ["ld-1"]
    assert await anomalies(audit, rule, "2021-03-18") == []
    # another area does not see it
    assert await anomalies(audit, rule, "2021-03-17", area="360703106") == []
    # a lead the registry dismissed (monitoring.lead_dismissed, the same lead with its new status) is not open
    await feed(audit.app, lead_event("ld-4", "hh-4", "2021-03-01"))
    assert [f["facts"]["lead_id"] for f in await anomalies(audit, rule, "2021-03-20")] == ["ld-4"]
    dismissed = lead_event("ld-4", "hh-4", "2021-03-01", status="dismissed")
    dismissed.type = "monitoring.lead_dismissed"
    await feed(audit.app, dismissed)
    assert await anomalies(audit, rule, "2021-03-20") == []


async def test_the_lead_period_is_a_setting(databases, tmp_path):
    from services.audit.app import create_app
    from shared.auth import mint_token
    from shared.config import AuditSettings
    from tests.helpers import running_app
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"),
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False, monitoring_lead_days=20)
    async with running_app(app, mint_token(settings, "audit:read")) as client:
        client.app = app
        await feed(app, lead_event("ld-1", "hh-1", "2021-03-01"))
        assert await anomalies(client, "monitoring_lead_not_verified", "2021-03-21") == []   # 20 days
        [found] = await anomalies(client, "monitoring_lead_not_verified", "2021-03-22")
        assert found["facts"]["days"] == 21 and found["facts"]["threshold_days"] == 20


async def test_monitoring_object_without_measures(audit):
    bare = Case("mo-1", "hh-1", ["ld-1"], "2021-03-25")
    helped = Case("mo-2", "hh-2", ["ld-2"], "2021-03-25")
    later = Case("mo-3", "hh-3", ["ld-3"], "2021-03-25")
    still = Case("mo-4", "hh-4", ["ld-4"], "2021-03-25")                  # never identified: not yet an object
    await feed(audit.app, bare.opened(), *bare.identify("2021-04-01"),
               helped.opened(), *helped.identify("2021-04-01"), helped.measure("2021-04-05"),
               later.opened(), *later.identify("2021-04-01"), later.measure("2021-05-01"),
               still.opened(), still.step("risk_warning", "2021-03-25"))
    rule = "monitoring_object_without_measures"
    assert await anomalies(audit, rule, "2021-04-16") == []                # 15 days after data entry: grace
    found = await anomalies(audit, rule, "2021-04-17")
    assert [f["facts"]["object_id"] for f in found] == ["mo-1", "mo-3"]   # mo-3's measure came on 2021-05-01
    first = found[0]
    assert first["household_id"] == "hh-1" and first["severity"] == "high"
    assert first["facts"] == {"object_id": "mo-1", "case_no": "1", "category": "marginal_at_risk",
                              "status": "monitored", "identified_on": "2021-04-01", "days": 16, "grace_days": 15}
    assert first["detail"] == ("monitoring object mo-1 (marginal_at_risk) identified on 2021-04-01 has no "
                               "assistance measure: 16 days > 15")
    assert [f["facts"]["object_id"] for f in await anomalies(audit, rule, "2021-05-01")] == ["mo-1"]
    # a measure for mo-1: nothing left
    await feed(audit.app, bare.measure("2021-05-02"))
    assert await anomalies(audit, rule, "2021-05-02") == []


async def eliminated_case(audit, object_id: str, household_id: str, assessment_: dict | None, *,
                          income: str | None = None, income_year: int = 2021) -> None:
    if income is not None:
        await feed(audit.app, registry_event("household.updated", snapshot(household_id, income=(income_year, income),
                                                                           status="exited"),
                                             time="2021-08-01T00:00:00"))
    case = Case(object_id, household_id, [f"ld-{object_id}"], "2021-01-05")
    await feed(audit.app, case.opened(), *case.identify("2021-01-20"), case.measure("2021-01-25"),
               *case.eliminate("2021-09-20", assessment_))


async def test_monitoring_eliminated_too_soon(audit):
    await eliminated_case(audit, "mo-ok", "hh-ok", assessment(6))           # exactly six months: fine
    await eliminated_case(audit, "mo-9", "hh-9", assessment(9))
    rule = "monitoring_eliminated_too_soon"
    assert await anomalies(audit, rule, "2021-12-31") == []
    await eliminated_case(audit, "mo-soon", "hh-soon", assessment(4))
    await eliminated_case(audit, "mo-none", "hh-none", None)                 # no benefits answer in the evidence
    found = {f["facts"]["object_id"]: f for f in await anomalies(audit, rule, "2021-12-31")}
    assert set(found) == {"mo-soon", "mo-none"}
    soon = found["mo-soon"]
    assert soon["facts"]["months_above_range"] == 4 and soon["facts"]["min_months"] == 6
    assert soon["facts"]["confirmed_by"] == "county-9" and soon["facts"]["eliminated_on"] == "2021-09-20"
    assert soon["detail"] == "monitoring object mo-soon eliminated on 2021-09-20 after 4 months above the range (< 6)"
    assert found["mo-none"]["facts"]["months_above_range"] is None
    assert "without benefits' elimination assessment" in found["mo-none"]["detail"]
    # the evidence is the county confirmation's ledger record
    records = (await audit.get("/v1/audit/records", params={"subject": "monitoring/mo-soon",
                                                            "type": "monitoring.risk_eliminated"})).json()["items"]
    assert soon["evidence"]["record_ids"] == [records[0]["id"]]
    # judged only once eliminated by as_of
    assert await anomalies(audit, rule, "2021-09-19") == []


async def test_monitoring_eliminated_inside_range(audit):
    line = range_line("360703", 2021)
    assert line["line"] == 6000  # the 2021 national floor, until Jiangxi's own figure is pack data
    rule = "monitoring_eliminated_inside_range"
    await eliminated_case(audit, "mo-at", "hh-at", assessment(8), income=f"{line['line']:.2f}")   # on the line
    await eliminated_case(audit, "mo-above", "hh-above", assessment(8), income="7200.00")
    await eliminated_case(audit, "mo-unknown", "hh-unknown", assessment(8))   # no income in audit: not judged
    assert await anomalies(audit, rule, "2021-12-31") == []
    await eliminated_case(audit, "mo-in", "hh-in", assessment(8), income=f"{line['line'] - 200:.2f}")
    [found] = await anomalies(audit, rule, "2021-12-31")
    assert found["household_id"] == "hh-in" and found["facts"]["object_id"] == "mo-in"
    assert found["facts"]["income"] == f"{line['line'] - 200:.2f}" and found["facts"]["income_year"] == 2021
    assert found["facts"]["range_line"] == str(line["line"])
    assert found["detail"].endswith(f"while the household's 2021 per-capita net income {line['line'] - 200:.2f} is "
                                    f"below the range line {line['line']}")
    assert len(found["evidence"]["record_ids"]) == 2  # the county confirmation and the income's snapshot
    assert "monitoring.range_line" in found["basis"]
    # a later snapshot with a 2022 income above the line clears it for a later as_of, not for 2021
    await feed(audit.app, registry_event("household.updated", snapshot("hh-in", version=2, income=(2022, "9000.00"),
                                                                       status="exited"),
                                         time="2022-08-01T00:00:00"))
    assert [f["household_id"] for f in await anomalies(audit, rule, "2021-12-31")] == ["hh-in"]
    assert await anomalies(audit, rule, "2022-12-31") == []
