"""Insurers: coverage judged on the stay's dates, a matchable look-up, roster changes with reason and date."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from services.benefits.consumer import apply_registry_event
from shared.db import transaction
from shared.events import Envelope
from tests.integration.partners.conftest import (AS_OF, FARMER_ID, UNKNOWN_ID, household, make_partners, new_number,
                                                 settings_for)

CHINA = dt.timezone(dt.timedelta(hours=8))


async def record(app, snapshot: dict, on: str) -> None:
    """The registry's event for this version, recorded on ``on`` (China time, mid-morning)."""
    envelope = Envelope(source="registry", type="household.updated", subject=f"household/{snapshot['id']}",
                        sequence=snapshot["version"], time=dt.datetime.fromisoformat(f"{on}T09:30:00+08:00"),
                        data={"household": snapshot, "version": snapshot["version"]})
    async with transaction(app.state.sessionmaker) as session:
        await apply_registry_event(session, envelope, AS_OF)


def stay(id_number: str, admission: str, discharge: str, claim_id: str) -> dict:
    return {"claim_id": claim_id, "id_number": id_number, "admission_date": admission, "discharge_date": discharge,
            "hospital_level": 2, "in_district": True, "total_cost": "20000.00", "in_policy_cost": "18000.00"}


async def settle(insurer, body: dict) -> dict:
    response = await insurer.post("/v1/settlements/one-stop", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def numbers(start: int, region: str = "360782") -> list[str]:
    return [new_number(i, region) for i in range(start, start + 4)]


@pytest.fixture
async def insurer_world(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, []):
        yield partners


async def test_death_after_discharge_does_not_matter_death_before_admission_does(insurer_world):
    people = numbers(100)
    snapshot = household("hh-death", numbers=people)
    await record(insurer_world.app, snapshot, "2020-01-02")
    died = copy.deepcopy(snapshot)
    died["version"] = 2
    died["members"][0]["deceased"] = True
    await record(insurer_world.app, died, "2020-06-20")  # the death was recorded on 20 June

    before_death = await settle(insurer_world.insurer, stay(people[0], "2020-06-10", "2020-06-15", "D-1"))
    assert before_death["eligible"] is True and before_death["reasons"] == []
    assert before_death["patient_pays"] == "2000.00" and before_death["coverage_judged_on"] == "2020-06-10"
    died_in_hospital = await settle(insurer_world.insurer, stay(people[0], "2020-06-20", "2020-06-25", "D-2"))
    assert died_in_hospital["eligible"] is True
    after_death = await settle(insurer_world.insurer, stay(people[0], "2020-06-21", "2020-06-25", "D-3"))
    assert after_death["eligible"] is False and after_death["layers"] == []
    assert after_death["reasons"] == ["deceased_before_admission"]
    # The rest of the household is untouched.
    spouse = await settle(insurer_world.insurer, stay(people[1], "2020-06-21", "2020-06-25", "D-4"))
    assert spouse["eligible"] is True


async def test_a_stay_while_registered_is_covered_after_a_later_removal(insurer_world):
    people = numbers(200)
    snapshot = household("hh-removed", numbers=people)
    await record(insurer_world.app, snapshot, "2019-01-02")
    await record(insurer_world.app, {**snapshot, "version": 2, "status": "removed"}, "2020-05-11")
    during = await settle(insurer_world.insurer, stay(people[0], "2020-04-01", "2020-04-10", "R-1"))
    assert during["eligible"] is True and during["patient_pays"] == "2000.00"
    after = await settle(insurer_world.insurer, stay(people[0], "2020-05-11", "2020-05-20", "R-2"))
    assert after["eligible"] is False and after["reasons"] == ["removed"]


async def test_a_stay_before_registration_is_not_covered(insurer_world):
    people = numbers(300)
    snapshot = household("hh-late", status="candidate", numbers=people)
    await record(insurer_world.app, snapshot, "2019-06-01")
    await record(insurer_world.app, {**snapshot, "version": 2, "status": "registered"}, "2020-03-01")
    before = await settle(insurer_world.insurer, stay(people[0], "2020-02-01", "2020-02-05", "L-1"))
    assert before["eligible"] is False and before["reasons"] == ["not_covered"]
    after = await settle(insurer_world.insurer, stay(people[0], "2020-03-01", "2020-03-05", "L-2"))
    assert after["eligible"] is True


@pytest.mark.parametrize(("admission", "discharge", "eligible", "reasons"), [
    ("2017-01-10", "2017-01-20", True, []),   # registered at the time
    ("2019-02-25", "2019-03-05", True, []),   # admitted inside the window, discharged after it closed
    ("2019-02-28", "2019-03-02", True, []),   # the window's last day (exit + 2 years - 1 day)
    ("2019-03-01", "2019-03-05", False, ["post_exit_window_ended"]),
])
async def test_post_exit_window_is_measured_to_the_admission_date(databases, tmp_path, admission, discharge,
                                                                  eligible, reasons):
    # Qinzhou keeps policies two years after exit (003 L387): exited 2017-03-01, covered to 2019-02-28.
    people = numbers(400, "450702")
    snapshot = household("hh-qz-exit", region="450702", numbers=people)
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, []):
        await record(partners.app, snapshot, "2016-01-04")
        await record(partners.app, {**snapshot, "version": 2, "status": "exited", "exit_date": "2017-03-01"},
                     "2017-03-06")
        result = await settle(partners.insurer, stay(people[0], admission, discharge, "W-1"))
        assert result["eligible"] is eligible and result["reasons"] == reasons
        assert (result["layers"] != []) is eligible


async def test_lookup_matches_policyholders_in_the_submitted_order(partners):
    people = numbers(500)
    snapshot = household("hh-look", numbers=people)
    await record(partners.app, snapshot, "2020-01-02")
    died = copy.deepcopy(snapshot)
    died["version"] = 2
    died["members"][1]["deceased"] = True
    await record(partners.app, died, "2020-06-20")
    submitted = [UNKNOWN_ID, FARMER_ID, people[1], FARMER_ID]
    response = await partners.insurer.post("/v1/settlements/coverage:lookup", json={"id_numbers": submitted})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["as_of"] == AS_OF.isoformat()
    assert [item["id_number_masked"] for item in body["items"]] == [
        f"{n[:6]}********{n[-4:]}" for n in submitted]
    unknown, farmer, deceased, again = body["items"]
    assert unknown == {"id_number_masked": unknown["id_number_masked"], "covered": False, "reason": "not_covered",
                       "effective_from": None, "effective_to": None, "programme": "health.one_stop_settlement"}
    assert farmer["covered"] is True and farmer["reason"] == "registered"
    assert farmer["effective_from"] == "2014-01-01" and farmer["effective_to"] is None and again == farmer
    assert deceased == {**deceased, "covered": False, "reason": "deceased", "effective_from": "2020-06-20"}
    assert (body["submitted"], body["matched"], body["covered"]) == (4, 3, 2)
    # Before the death the same person was covered, until the day of death.
    earlier = (await partners.insurer.post("/v1/settlements/coverage:lookup", json={
        "id_numbers": [people[1]], "as_of": "2020-06-01"})).json()["items"][0]
    assert earlier["covered"] is True
    # Logged with counts, and no clear number anywhere in what leaves the service.
    events = await partners.outbox_payloads()
    access = [e for e in events if e["type"] == "partner.access"
              and e["data"]["endpoint"] == "POST /v1/settlements/coverage:lookup"]
    assert access[0]["data"]["outcome"]["submitted"] == 4 and access[0]["data"]["outcome"]["covered"] == 2
    assert {"household_id": "hh-look", "person_id": "hh-look-p2"} in access[0]["data"]["outcome"]["persons"]
    assert not any(number in str(events) for number in submitted)


@pytest.mark.parametrize("body", [
    {"id_numbers": []},
    {"id_numbers": [FARMER_ID[:-1] + "9"]},
    {"id_numbers": [FARMER_ID] * 501},
    {"id_numbers": [FARMER_ID], "as_of": "2020-13-01"},
])
async def test_lookup_refuses_bad_input_with_problem_json(partners, body):
    before = len(await partners.outbox_payloads())
    response = await partners.insurer.post("/v1/settlements/coverage:lookup", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] and FARMER_ID[:-1] not in response.text
    assert len(await partners.outbox_payloads()) == before


async def test_lookup_needs_the_settlement_scope(partners):
    response = await partners.bank.post("/v1/settlements/coverage:lookup", json={"id_numbers": [FARMER_ID]})
    assert response.status_code == 403


async def test_roster_changes_carry_reason_and_effective_date(partners):
    people = numbers(600)
    snapshot = household("hh-roster", numbers=people)
    await record(partners.app, snapshot, "2020-01-02")
    start = (await partners.insurer.get("/v1/settlements/roster")).json()
    mine = [i for i in start["items"] if i["id_number"] == f"{people[0][:6]}********{people[0][-4:]}"]
    assert mine and mine[0]["reason"] == "registered" and mine[0]["effective_date"] == "2014-01-01"
    died = copy.deepcopy(snapshot)
    died["version"] = 2
    died["members"][0]["deceased"] = True
    await record(partners.app, died, "2020-06-20")
    changes = (await partners.insurer.get("/v1/settlements/roster", params={"cursor": start["next_cursor"]})).json()
    assert [(i["covered"], i["reason"], i["effective_date"]) for i in changes["items"]] == [
        (False, "deceased", "2020-06-20")]
    await record(partners.app, {**died, "version": 3, "status": "removed"}, "2020-06-25")
    removed = (await partners.insurer.get("/v1/settlements/roster",
                                          params={"cursor": changes["next_cursor"]})).json()["items"]
    assert {(i["covered"], i["reason"], i["effective_date"]) for i in removed} == {(False, "removed", "2020-06-25")}
    assert len(removed) == 3  # the three living members; the deceased one's entry did not change


async def test_roster_shows_the_post_exit_window_end(databases, tmp_path):
    people = numbers(700, "450702")
    snapshot = household("hh-qz-roster", region="450702", numbers=people)
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, []):
        await record(partners.app, snapshot, "2016-01-04")
        start = (await partners.insurer.get("/v1/settlements/roster")).json()
        await record(partners.app, {**snapshot, "version": 2, "status": "exited", "exit_date": "2019-03-01"},
                     "2019-03-06")
        items = (await partners.insurer.get("/v1/settlements/roster",
                                            params={"cursor": start["next_cursor"]})).json()["items"]
        assert {(i["covered"], i["reason"], i["effective_date"], i["coverage_until"]) for i in items} == {
            (True, "exited", "2019-03-01", "2021-02-28")}
        await record(partners.app, {**snapshot, "version": 3, "status": "exited", "exit_date": "2018-03-01"},
                     "2019-04-01")  # a corrected exit date: the window closed before today (2020-06-30)
        items = (await partners.insurer.get("/v1/settlements/roster",
                                            params={"cursor": start["next_cursor"]})).json()["items"]
        assert {(i["covered"], i["reason"], i["effective_date"]) for i in items} == {
            (False, "post_exit_window_ended", "2020-03-01")}


async def test_the_registrys_date_of_death_decides_not_the_day_it_was_recorded(insurer_world):
    """The death was entered late (recorded 2020-07-01) but happened on 2020-05-20: a stay admitted
    on 2020-06-10 is refused, one admitted on 2020-05-10 is covered."""
    people = numbers(300)
    snapshot = household("hh-late-death", numbers=people)
    await record(insurer_world.app, snapshot, "2020-01-02")
    died = copy.deepcopy(snapshot)
    died["version"] = 2
    died["members"][0].update(deceased=True, date_of_death="2020-05-20")
    await record(insurer_world.app, died, "2020-07-01")

    after_death = await settle(insurer_world.insurer, stay(people[0], "2020-06-10", "2020-06-15", "LD-1"))
    assert after_death["eligible"] is False and after_death["reasons"] == ["deceased_before_admission"]
    before_death = await settle(insurer_world.insurer, stay(people[0], "2020-05-10", "2020-05-15", "LD-2"))
    assert before_death["eligible"] is True and before_death["patient_pays"] == "2000.00"
