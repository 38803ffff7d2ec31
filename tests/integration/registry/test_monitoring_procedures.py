"""Monitoring against a return to poverty through the registry API (docs/monitoring.md): leads, the nine
identification steps, measures and the plan, the six elimination steps, separation of duties, history."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from services.registry.app import create_app
from services.registry.tables import monitoring_leads, monitoring_objects, monitoring_steps, outbox
from shared.auth import mint_token
from shared.config import RegistrySettings
from tests.helpers import household_body, running_app
from tests.integration.registry.conftest import Clock

IDENTIFICATION = ["risk_warning", "home_verification", "household_commitment", "information_comparison",
                  "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry"]
ELIMINATION = ["propose_elimination", "home_verification", "democratic_appraisal", "village_notice",
               "township_confirmation", "county_confirmation"]


class BenefitsFake:
    """Answers the elimination criteria (docs/monitoring.md's shape) and the entitlements read."""

    def __init__(self) -> None:
        self.eligible = True
        self.months = 7
        self.calls: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        household_id = request.url.path.split("/")[3]
        if request.url.path.endswith("/monitoring/elimination"):
            return httpx.Response(200, json={
                "household_id": household_id, "eligible": self.eligible, "months_above_range": self.months,
                "above_range_since": "2021-01-01", "as_of": request.url.params["as_of"],
                "explanation": [{"condition": "months_above_range >= 6", "value": self.months,
                                 "passed": self.months >= 6}],
                "source": {"seed": "monitoring", "lines": "L1"}})
        if request.url.path.endswith("/entitlements"):
            return httpx.Response(200, json={"household_id": household_id, "household_version": 1, "entitlements": [
                {"program": "safety_net.dibao", "person_id": None, "eligible": True, "amount": "450.00",
                 "unit": "month"}, {"program": "education.x", "eligible": False}], "assessments": []})
        return httpx.Response(404, json={"title": "Not found"})


@pytest.fixture
async def office(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False, monitoring_consumer=False)
    fake = BenefitsFake()
    app = create_app(settings, benefits_transport=httpx.MockTransport(fake.handler))
    async with running_app(app, mint_token(settings, "registry:read registry:write", subject="office-1")) as client:
        app.state.clock = Clock()
        client.app, client.fake, client.clock = app, fake, app.state.clock

        def as_(subject: str, scopes: str = "registry:read registry:write", **kw) -> dict:
            return {"Authorization": f"Bearer {mint_token(settings, scopes, subject=subject, **kw)}"}
        client.as_ = as_
        client.admin = as_("admin-1", "admin")
        yield client


async def new_household(client, **overrides) -> dict:
    response = await client.post("/v1/households", json=household_body(**overrides), headers=client.admin)
    assert response.status_code == 201, response.text
    return response.json()


def lead_body(household_id: str, **overrides) -> dict:
    return {"client_lead_id": str(uuid.uuid4()), "household_id": household_id, "channel": "department",
            "risk_causes": ["illness"], "reported_at": "2021-03-01T09:00:00+08:00", "notes": "医保局推送", **overrides}


async def step(client, object_id: str, action: str, actor: str = "office-1", expect: int = 200, **body) -> dict:
    response = await client.post(f"/v1/monitoring/objects/{object_id}/transitions",
                                 json={"action": action, **body}, headers=client.as_(actor))
    assert response.status_code == expect, response.text
    return response.json()


async def identify(client, object_id: str) -> dict:
    """The nine steps, alternating actors so no approving step follows its own actor's step."""
    body = None
    for index, action in enumerate(IDENTIFICATION):
        if action == "township_review":
            client.clock.advance(days=5, minutes=1)
        body = await step(client, object_id, action, actor=f"office-{index % 2 + 1}",
                          evidence={"note": f"{action} done"})
    return body


async def monitoring_events(app) -> list[dict]:
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars()
        return [e for e in (json.loads(p) for p in rows) if e["type"].startswith("monitoring.")]


async def test_department_lead_to_risk_elimination(office):
    household = await new_household(office, status="exited", exit_date="2019-12-01")
    hid = household["id"]
    # a department's lead, then a cadre's about the same household: attached, never a second case
    created = await office.post("/v1/monitoring/leads", json=lead_body(hid))
    assert created.status_code == 201, created.text
    lead = created.json()
    assert lead["status"] == "open" and lead["channel"] == "department" and lead["risk_causes"] == ["illness"]
    second = (await office.post("/v1/monitoring/leads", json=lead_body(hid, channel="cadre_visit",
                                                                       risk_causes=["accident"]))).json()
    assert second["status"] == "merged" and second["merged_into"] == lead["id"]

    opened = await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "unstable_exited"})
    assert opened.status_code == 201, opened.text
    obj = opened.json()
    assert obj["status"] == "identifying" and obj["case_no"] == 1 and obj["step"] is None
    assert obj["risk_causes"] == ["accident", "illness"] and sorted(obj["lead_ids"]) == sorted([lead["id"], second["id"]])
    assert obj["allowed_actions"] == ["dismiss", "risk_warning"]
    assert (await office.get(f"/v1/monitoring/leads/{lead['id']}")).json()["status"] == "verifying"

    # identification: the nine steps; the township may not review during the notice period
    for index, action in enumerate(IDENTIFICATION[:6]):
        await step(office, obj["id"], action, actor=f"office-{index % 2 + 1}")
    running = await step(office, obj["id"], "township_review", actor="office-1", expect=409)
    assert running["notice_ends_at"] and running["allowed_actions"] == ["dismiss", "township_review"]
    office.clock.advance(days=5, minutes=1)
    await step(office, obj["id"], "township_review", actor="office-1")
    done = None
    for action, actor in (("county_approval", "office-2"), ("data_entry", "office-1")):
        done = await step(office, obj["id"], action, actor=actor)
    assert done["status"] == "monitored" and done["identified_at"] and done["procedure"] is None
    assert [s["step"] for s in done["steps"]] == IDENTIFICATION
    assert done["steps"][-1]["evidence"]["household_transition"]["to_status"] == "monitored"
    assert (await office.get(f"/v1/households/{hid}")).json()["status"] == "monitored"

    # assistance: measures, and the plan's checks
    measure = await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
        "type": "medical", "risk_cause": "illness", "responsible": "区医保局", "start_date": "2021-04-01",
        "status": "in_progress"})
    assert measure.status_code == 201, measure.text
    assert measure.json()["object"]["first_measure_at"]
    plan = (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()
    assert plan["checks"]["uncovered_risk_causes"] == ["accident"] and not plan["checks"]["ok"]
    assert [e["program"] for e in plan["entitlements"]["items"]] == ["safety_net.dibao"]
    await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
        "type": "insurance", "risk_cause": "accident", "responsible": "人保财险", "start_date": "2021-04-02"})
    plan = (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()
    assert plan["checks"]["ok"] and plan["checks"]["uncovered_risk_causes"] == []

    # elimination: refused while benefits says under six months, then the six steps
    office.fake.eligible, office.fake.months = False, 3
    refused = await step(office, obj["id"], "propose_elimination", expect=409, as_of="2021-07-01")
    assert refused["code"] == "elimination_criteria_not_met"
    assert refused["benefits_assessment"]["months_above_range"] == 3
    office.fake.eligible, office.fake.months = True, 7
    for index, action in enumerate(ELIMINATION):
        if action == "township_confirmation":
            office.clock.advance(days=5, minutes=1)
        final = await step(office, obj["id"], action, actor=f"office-{index % 2 + 1}", as_of="2021-11-01")
    assert final["status"] == "eliminated" and final["eliminated_at"]
    assert final["steps"][-1]["evidence"]["benefits_assessment"]["months_above_range"] == 7
    assert (await office.get(f"/v1/households/{hid}")).json()["status"] == "exited"

    types = [e["type"] for e in await monitoring_events(office.app)]
    assert types[:3] == ["monitoring.lead_recorded", "monitoring.lead_recorded", "monitoring.object_opened"]
    assert types.count("monitoring.step_completed") == 9 + 5 and types[-1] == "monitoring.risk_eliminated"
    last = (await monitoring_events(office.app))[-1]
    assert last["subject"] == f"monitoring/{obj['id']}" and last["sequence"] == final["version"]
    assert last["data"]["labour_capacity"] in ("has_labour", "no_labour")
    assert last["data"]["object"]["steps"][-1]["evidence"]["benefits_assessment"]["eligible"] is True

    # a later case: history kept, case_no increments; the case file lists both
    again = (await office.post("/v1/monitoring/leads", json=lead_body(hid, reported_at="2022-02-01T09:00:00+08:00"))).json()
    assert again["status"] == "open"
    case2 = (await office.post("/v1/monitoring/objects", json={"lead_id": again["id"],
                                                               "category": "sudden_hardship"})).json()
    assert case2["case_no"] == 2
    file = (await office.get(f"/v1/households/{hid}/file", headers=office.admin)).json()
    assert [o["case_no"] for o in file["monitoring"]["procedures"]] == [2, 1]


async def test_illegal_steps_and_separation_of_duties_write_nothing(office):
    hid = (await new_household(office, status="exited", exit_date="2019-12-01"))["id"]
    lead = (await office.post("/v1/monitoring/leads", json=lead_body(hid))).json()
    obj = (await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "unstable_exited"})).json()

    async def counts():
        async with office.app.state.sessionmaker() as session:
            return (await session.scalar(select(func.count()).select_from(monitoring_steps)),
                    await session.scalar(select(func.count()).select_from(outbox)))
    before = await counts()
    skipped = await step(office, obj["id"], "democratic_appraisal", expect=409)
    assert skipped["allowed_actions"] == ["dismiss", "risk_warning"] and skipped["current_status"] == "identifying"
    unknown = await step(office, obj["id"], "teleport", expect=422)
    assert unknown["allowed_actions"] == ["dismiss", "risk_warning"]
    assert (await step(office, obj["id"], "propose_elimination", expect=409))["action"] == "propose_elimination"
    assert (await step(office, obj["id"], "dismiss", expect=422))["errors"][0]["loc"] == ["body", "reason"]
    assert await counts() == before
    for action in IDENTIFICATION[:6]:
        await step(office, obj["id"], action, actor="office-1")
    office.clock.advance(days=6)
    same = await step(office, obj["id"], "township_review", actor="office-1", expect=409)
    assert same["code"] == "separation_of_duties" and same["actor"] == "office-1"
    await step(office, obj["id"], "township_review", actor="office-2")
    assert (await step(office, obj["id"], "county_approval", actor="office-2", expect=409))["code"] == \
        "separation_of_duties"
    dismissed = await step(office, obj["id"], "dismiss", reason="核实收入稳定，无返贫风险")
    assert dismissed["status"] == "dismissed" and dismissed["closed_at"]
    assert (await office.get(f"/v1/monitoring/leads/{lead['id']}")).json()["status"] == "dismissed"
    assert (await monitoring_events(office.app))[-1]["type"] == "monitoring.object_dismissed"
    # closed: no more steps, no measures
    assert (await step(office, obj["id"], "risk_warning", expect=409))["allowed_actions"] == []
    closed = await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
        "type": "medical", "responsible": "x", "start_date": "2021-04-01"})
    assert closed.status_code == 409 and closed.json()["current_status"] == "dismissed"


async def test_one_open_case_per_household_and_lead_states(office):
    hid = (await new_household(office))["id"]
    lead = (await office.post("/v1/monitoring/leads", json=lead_body(hid))).json()
    wrong = await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "unstable_exited"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == ["body", "category"]
    obj = (await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"],
                                                             "category": "marginal_at_risk"})).json()
    again = await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "marginal_at_risk"})
    assert again.status_code == 409 and again.json()["lead_status"] == "verifying"
    later = (await office.post("/v1/monitoring/leads", json=lead_body(hid))).json()
    assert later["status"] == "merged" and later["merged_into"] == obj["id"] == later["monitoring_object_id"]
    refused = await office.post(f"/v1/monitoring/leads/{later['id']}/dismiss", json={"reason": "重复"})
    assert refused.status_code == 409 and refused.json()["lead"]["status"] == "merged"
    # a marginal never-registered household becomes a 边缘户 under monitoring at data entry
    done = await identify(office, obj["id"])
    assert done["status"] == "monitored"
    household = (await office.get(f"/v1/households/{hid}")).json()
    assert household["status"] == "monitored" and "marginal" in household["categories"]


async def test_lead_resend_conflict_scopes_and_areas(office):
    household = await new_household(office)
    hid = household["id"]
    body = lead_body(hid, channel="self_report")
    first = await office.post("/v1/monitoring/leads", json=body)
    resent = await office.post("/v1/monitoring/leads", json=body)
    assert first.status_code == 201 and resent.status_code == 200 and resent.json()["id"] == first.json()["id"]
    assert resent.headers["idempotent-replayed"] == "true"
    other = await office.post("/v1/monitoring/leads", json={**body, "risk_causes": ["disaster"]})
    assert other.status_code == 409 and other.json()["differs"] == ["risk_causes"]
    assert other.json()["stored_lead"]["id"] == first.json()["id"]
    # a cadre: only paired households
    cadre = office.as_("cadre-9", "visits:write")
    refused = await office.post("/v1/monitoring/leads", json=lead_body(hid), headers=cadre)
    assert refused.status_code == 403 and "paired" in refused.json()["detail"]
    await office.post("/v1/cadres", json={"id": "cadre-9", "name": "九干部", "unit": "区局"}, headers=office.admin)
    await office.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-9"}, headers=office.admin)
    accepted = await office.post("/v1/monitoring/leads", json=lead_body(hid), headers=cadre)
    assert accepted.status_code == 201 and accepted.json()["recorded_by"] == "cadre-9"
    # bad input: 422 naming the field; another area: 404 like a missing one
    bad = await office.post("/v1/monitoring/leads", json=lead_body(hid, risk_causes=["boredom"]))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][:2] == ["body", "risk_causes"]
    elsewhere = office.as_("office-x", "registry:read registry:write", area="999999")
    assert (await office.get(f"/v1/monitoring/leads/{first.json()['id']}", headers=elsewhere)).status_code == 404
    assert (await office.post("/v1/monitoring/leads", json=lead_body(hid), headers=elsewhere)).status_code == 404
    assert (await office.get("/v1/monitoring/leads", headers=elsewhere)).json()["items"] == []
    # batch: per-item results, safe to resend
    batch = {"leads": [lead_body(hid), {"client_lead_id": "nope"}]}
    answer = (await office.post("/v1/monitoring/leads:batch", json=batch)).json()
    assert [i["status"] for i in answer["items"]] == [201, 422] and answer["recorded"] == 1
    again = (await office.post("/v1/monitoring/leads:batch", json=batch)).json()
    assert [i["status"] for i in again["items"]] == [200, 422]
    # list: filters and cursor pages
    page = (await office.get("/v1/monitoring/leads", params={"household_id": hid, "limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await office.get("/v1/monitoring/leads", params={"household_id": hid, "cursor": page["next_cursor"]})).json()
    assert {i["id"] for i in page["items"]}.isdisjoint({i["id"] for i in rest["items"]})
    assert len(page["items"]) + len(rest["items"]) == 3  # the first, the cadre's, the batch's
    opened = (await office.get("/v1/monitoring/leads", params={"status": "open"})).json()["items"]
    assert [i["id"] for i in opened] == [first.json()["id"]]
    assert (await office.get("/v1/monitoring/leads", params={"bogus": 1})).status_code == 422


async def test_object_queries_by_category_step_area_and_age(office):
    ids = []
    for category, status, example in (("unstable_exited", "exited", "nankang-farmer"),
                                      ("sudden_hardship", "registered", "nankang-dibao-elderly")):
        extra = {"exit_date": "2019-12-01"} if status == "exited" else {}
        response = await office.post("/v1/households", json=household_body(example, status=status, **extra),
                                     headers=office.admin)
        assert response.status_code == 201, response.text
        hid = response.json()["id"]
        lead = (await office.post("/v1/monitoring/leads", json=lead_body(hid))).json()
        ids.append((await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"],
                                                                      "category": category})).json()["id"])
    await step(office, ids[1], "risk_warning")
    found = (await office.get("/v1/monitoring/objects", params={"category": "sudden_hardship"})).json()["items"]
    assert [o["id"] for o in found] == [ids[1]]
    at_step = (await office.get("/v1/monitoring/objects", params={"step": "risk_warning"})).json()["items"]
    assert [o["id"] for o in at_step] == [ids[1]]
    office.clock.advance(days=20)
    old = (await office.get("/v1/monitoring/objects", params={"older_than_days": 10})).json()["items"]
    assert len(old) == 2
    assert (await office.get("/v1/monitoring/objects", params={"older_than_days": 30})).json()["items"] == []
    page = (await office.get("/v1/monitoring/objects", params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert (await office.get("/v1/monitoring/objects", params={"area": "360703"})).json()["items"]
    assert (await office.get("/v1/monitoring/objects", params={"area": "999999"})).json()["items"] == []
    assert (await office.get("/v1/monitoring/objects", params={"step": "nope"})).status_code == 422


MERGE = {"Content-Type": "application/merge-patch+json"}


async def patch_measure(client, object_id: str, measure_id: str, patch, expect: int = 200, headers=None) -> dict:
    response = await client.patch(f"/v1/monitoring/objects/{object_id}/measures/{measure_id}",
                                  content=json.dumps(patch), headers={**MERGE, **(headers or {})})
    assert response.status_code == expect, response.text
    if expect >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


async def test_a_measure_changes_status_by_the_table_with_who_and_when(office):
    hid = (await new_household(office, status="exited", exit_date="2019-12-01"))["id"]
    lead = (await office.post("/v1/monitoring/leads", json=lead_body(hid))).json()
    obj = (await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "unstable_exited"})).json()
    await identify(office, obj["id"])
    recorded = await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
        "type": "medical", "risk_cause": "illness", "responsible": "区医保局", "start_date": "2021-04-01"})
    assert recorded.status_code == 201, recorded.text
    measure = recorded.json()["measure"]
    assert measure["status"] == "planned" and measure["status_history"] == [] and measure["updated_by"] is None
    version = recorded.json()["object"]["version"]
    assert (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()["checks"]["ok"] is True

    async def counts():
        async with office.app.state.sessionmaker() as session:
            return (await session.scalar(select(func.max(monitoring_objects.c.version))
                                         .where(monitoring_objects.c.id == obj["id"])),
                    await session.scalar(select(func.count()).select_from(outbox)))

    # illegal: planned → completed skips in_progress; nothing written
    before = await counts()
    refused = await patch_measure(office, obj["id"], measure["id"], {"status": "completed"}, expect=409)
    assert refused["current_status"] == "planned" and refused["wanted_status"] == "completed"
    assert refused["allowed"] == ["in_progress", "cancelled"]
    assert "allowed: in_progress, cancelled" in refused["detail"]
    # bad input: 422 naming the field, nothing written
    for patch, loc in (({"type": "housing"}, ["body", "type"]), ({"status": None}, ["body", "status"]),
                       ({"responsible": None}, ["body", "responsible"]), ({"status": "stopped"}, ["body", "status"]),
                       ({"end_date": "2021-03-01"}, ["body", "end_date"])):
        bad = await patch_measure(office, obj["id"], measure["id"], patch, expect=422)
        assert bad["errors"][0]["loc"][:2] == loc, (patch, bad)
    assert (await patch_measure(office, obj["id"], measure["id"], ["status"], expect=422))["errors"][0]["loc"] == \
        ["body"]
    # another area: 404 like a missing one; a measure id that is not the object's: 404
    elsewhere = office.as_("office-x", "registry:read registry:write", area="999999")
    hidden = await patch_measure(office, obj["id"], measure["id"], {"status": "in_progress"}, expect=404,
                                 headers=elsewhere)
    assert hidden["title"] == "Monitoring object not found"
    missing = await patch_measure(office, obj["id"], "mm-nope", {"status": "in_progress"}, expect=404)
    assert missing["title"] == "Measure not found" and "mm-nope" in missing["detail"]
    assert await counts() == before

    # legal: planned → in_progress by office-2, then in_progress → completed with an end date by office-1
    office.clock.advance(days=1)
    started = await patch_measure(office, obj["id"], measure["id"], {"status": "in_progress", "notes": "已报销"},
                                  headers=office.as_("office-2"))
    assert started["measure"]["status"] == "in_progress" and started["measure"]["notes"] == "已报销"
    assert started["measure"]["updated_by"] == "office-2" and started["measure"]["updated_at"]
    assert [(h["from"], h["to"], h["by"]) for h in started["measure"]["status_history"]] == [
        ("planned", "in_progress", "office-2")]
    assert started["object"]["version"] == version + 1
    # the same patch again changes nothing: nothing written, the same state answered
    again = await patch_measure(office, obj["id"], measure["id"], {"status": "in_progress", "notes": "已报销"})
    assert again == started and (await counts())[1] == before[1] + 1
    done = await patch_measure(office, obj["id"], measure["id"], {"status": "completed", "end_date": "2021-06-30",
                                                                  "responsible": "区医疗保障局"})
    assert done["measure"]["status"] == "completed" and done["measure"]["end_date"] == "2021-06-30"
    assert done["measure"]["responsible"] == "区医疗保障局" and done["measure"]["updated_by"] == "office-1"
    assert [(h["from"], h["to"], h["by"]) for h in done["measure"]["status_history"]] == [
        ("planned", "in_progress", "office-2"), ("in_progress", "completed", "office-1")]
    assert done["object"]["version"] == version + 2
    # completed is final
    final = await patch_measure(office, obj["id"], measure["id"], {"status": "cancelled"}, expect=409)
    assert final["allowed"] == [] and final["current_status"] == "completed" and "allowed: none" in final["detail"]
    # a completed measure still covers its cause
    assert (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()["checks"]["ok"] is True

    # the event: the object's full state, like monitoring.measure_recorded, sequence = the object's version
    events = await monitoring_events(office.app)
    assert [e["type"] for e in events[-3:]] == ["monitoring.measure_recorded", "monitoring.measure_updated",
                                                "monitoring.measure_updated"]
    last = events[-1]
    assert last["subject"] == f"monitoring/{obj['id']}" and last["sequence"] == version + 2
    assert last["actor"] == "office-1" and last["source"] == events[-3]["source"]
    assert last["data"]["object"] == {k: v for k, v in done["object"].items() if k not in ("allowed_actions", "area")}
    assert last["data"]["area"] == done["object"]["area"] and last["data"]["labour_capacity"] == "has_labour"
    assert set(last["data"]) == set(events[-3]["data"])

    # another measure cancelled: the plan no longer counts it; its cause is uncovered again
    second = (await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
        "type": "insurance", "risk_cause": "illness", "responsible": "人保财险", "start_date": "2021-07-01"})).json()
    ended = await patch_measure(office, obj["id"], second["measure"]["id"], {"status": "cancelled"})
    assert ended["measure"]["status"] == "cancelled"
    assert (await patch_measure(office, obj["id"], second["measure"]["id"], {"status": "planned"},
                                expect=409))["allowed"] == []


async def test_cancelling_the_only_measure_for_a_cause_uncovers_it_and_closed_objects_refuse(office):
    hid = (await new_household(office, status="exited", exit_date="2019-12-01"))["id"]
    lead = (await office.post("/v1/monitoring/leads",
                              json=lead_body(hid, risk_causes=["illness", "accident"]))).json()
    obj = (await office.post("/v1/monitoring/objects", json={"lead_id": lead["id"], "category": "unstable_exited"})).json()
    await identify(office, obj["id"])
    ids = {}
    for kind, cause in (("medical", "illness"), ("insurance", "accident")):
        answer = await office.post(f"/v1/monitoring/objects/{obj['id']}/measures", json={
            "type": kind, "risk_cause": cause, "responsible": "区医保局", "start_date": "2021-04-01",
            "status": "in_progress"})
        ids[cause] = answer.json()["measure"]["id"]
    plan = (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()
    assert plan["checks"]["ok"] is True and plan["checks"]["active_measures"] == 2
    await patch_measure(office, obj["id"], ids["accident"], {"status": "cancelled", "notes": "保险未获批"})
    plan = (await office.get(f"/v1/monitoring/objects/{obj['id']}/plan")).json()
    assert plan["checks"]["ok"] is False and plan["checks"]["problems"] == ["uncovered_risk_causes"]
    assert plan["checks"]["uncovered_risk_causes"] == ["accident"] and plan["checks"]["active_measures"] == 1
    assert {m["id"]: m["status"] for m in plan["measures"]} == {ids["illness"]: "in_progress",
                                                                 ids["accident"]: "cancelled"}

    # eliminated: its measures no longer change (409 naming the status), nothing written
    for index, action in enumerate(ELIMINATION):
        if action == "township_confirmation":
            office.clock.advance(days=5, minutes=1)
        final = await step(office, obj["id"], action, actor=f"office-{index % 2 + 1}", as_of="2021-11-01")
    assert final["status"] == "eliminated"
    events = len(await monitoring_events(office.app))
    closed = await patch_measure(office, obj["id"], ids["illness"], {"status": "completed"}, expect=409)
    assert closed["current_status"] == "eliminated" and closed["title"] == "Monitoring object closed"
    assert len(await monitoring_events(office.app)) == events
    after = (await office.get(f"/v1/monitoring/objects/{obj['id']}")).json()
    assert {m["id"]: m["status"] for m in after["measures"]} == {ids["illness"]: "in_progress",
                                                                  ids["accident"]: "cancelled"}


async def test_a_nul_character_in_a_body_field_is_422_and_writes_nothing(office):
    """Found by fuzzing on PostgreSQL: a lead id holding U+0000 reached the database, whose text refuses it
    (a 500). Refused at the statement on both databases (shared.db.refuse_nul_text), the transaction whole."""
    household = await new_household(office, status="exited", exit_date="2019-12-01")
    refused = await office.post("/v1/monitoring/objects", json={"lead_id": "ab\u0000c", "category": "unstable_exited"})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["type"] == "nul_character"
    lead = await office.post("/v1/monitoring/leads", json=lead_body(household["id"], notes="第一行\u0000第二行"))
    assert lead.status_code == 422, lead.text
    listed = (await office.get("/v1/monitoring/leads", params={"household_id": household["id"]})).json()
    assert listed["items"] == []  # nothing of the refused lead was kept
