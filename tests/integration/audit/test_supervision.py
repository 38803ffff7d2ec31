"""Read models, anomaly rules (a positive and a negative case each), history, statistics,
samples and progress, with events fed through the audit consumer's handler."""
from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from tests.integration.audit.support import (access_event, assessment_event, entitlement_event, feed, pairing_event,
                                             person, registry_event, snapshot, village_event)

AS_OF = "2020-06-30"


async def anomalies(audit, rule: str, **params) -> list[dict]:
    response = await audit.get("/v1/supervision/anomalies", params={"rule": rule, "as_of": AS_OF, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def exit_step(action: str, override: bool = False, reason: str | None = None, unmet=()) -> dict:
    return {"action": action, "actor": "township-7", "at": "2020-03-01T00:00:00+08:00", "outcome": "ok",
            "reason": reason, "override": override, "overridden_criteria": list(unmet)}


async def exit_household(audit, hid: str, *, override: bool, ready: bool, relocated=False, moved_in=False,
                         village="A", seq=1, cadres=None):
    await feed(audit.app, registry_event("household.registered", snapshot(hid, relocated=relocated, moved_in=moved_in,
                                                                         village=village, seq=seq, cadres=cadres),
                                         time="2019-01-01T00:00:00"))
    await feed(audit.app, assessment_event(hid, ready, [] if ready else ["income"]), partition=1)
    await feed(audit.app, registry_event(
        "household.updated", snapshot(hid, version=2, relocated=relocated, moved_in=moved_in, village=village,
                                      seq=seq, cadres=cadres),
        step=exit_step("propose_exit", override, "村民代表会议认定" if override else None,
                       [] if ready else ["income"]), time="2020-03-01T00:00:00"))
    await feed(audit.app, registry_event(
        "household.status_changed", snapshot(hid, version=3, status="exited", exit_date="2020-03-10",
                                             relocated=relocated, moved_in=moved_in, village=village, seq=seq,
                                             cadres=cadres),
        step=exit_step("approve_exit"), time="2020-03-10T00:00:00"))


# ---------------------------------------------------------------- rules

async def test_entitlement_to_deceased_or_removed_person(audit):
    members = [person("p1", 1), person("p2", 3, relation="spouse")]
    await feed(audit.app, registry_event("household.registered", snapshot("hh-d", members=members)))
    await feed(audit.app, entitlement_event("hh-d", "health.insurance_premium", "granted", person_id="p2"),
               entitlement_event("hh-d", "health.insurance_premium", "granted", person_id="p1"), partition=1)
    assert await anomalies(audit, "entitlement_to_ineligible_person") == []  # negative: everyone alive
    dead = [person("p1", 1), person("p2", 3, relation="spouse", deceased=True)]
    [record] = await feed(audit.app, registry_event("household.updated", snapshot("hh-d", version=2, members=dead),
                                                    time="2020-02-01T00:00:00"))
    [found] = await anomalies(audit, "entitlement_to_ineligible_person")
    assert found["household_id"] == "hh-d" and found["facts"]["person_id"] == "p2"
    assert "deceased" in found["detail"] and record["id"] in found["evidence"]["record_ids"]
    assert len(found["evidence"]["event_ids"]) == 1
    # the benefits engine revokes: the anomaly is gone
    await feed(audit.app, entitlement_event("hh-d", "health.insurance_premium", "revoked", person_id="p2", version=2),
               partition=1)
    assert await anomalies(audit, "entitlement_to_ineligible_person") == []
    # a removed household with a household-level entitlement still current
    await feed(audit.app, registry_event("household.registered", snapshot("hh-r", seq=5)))
    await feed(audit.app, entitlement_event("hh-r", "industry.machinery", "granted"), partition=1)
    await feed(audit.app, registry_event("household.removed", snapshot("hh-r", version=2, status="removed", seq=5)))
    [removed] = await anomalies(audit, "entitlement_to_ineligible_person")
    assert removed["household_id"] == "hh-r" and "removed" in removed["detail"]


async def test_exit_overridden_past_readiness(audit):
    await exit_household(audit, "hh-ok", override=False, ready=True, seq=1)
    assert await anomalies(audit, "exit_overridden") == []
    await exit_household(audit, "hh-fake", override=True, ready=False, seq=3)
    [found] = await anomalies(audit, "exit_overridden")
    assert found["household_id"] == "hh-fake" and found["facts"]["unmet"] == ["income"]
    assert found["facts"]["override_reasons"] == ["村民代表会议认定"] and found["facts"]["deciders"] == ["township-7"]
    assert len(found["evidence"]["record_ids"]) == 3  # propose, approve, the assessment


async def test_relocated_exit_not_moved_in(audit):
    await exit_household(audit, "hh-moved", override=False, ready=True, relocated=True, moved_in=True, seq=1)
    assert await anomalies(audit, "relocated_exit_not_moved_in") == []
    await exit_household(audit, "hh-notmoved", override=False, ready=True, relocated=True, moved_in=False, seq=3)
    [found] = await anomalies(audit, "relocated_exit_not_moved_in")
    assert found["household_id"] == "hh-notmoved" and found["facts"]["moved_in_at_exit"] is False


async def test_same_id_number_in_two_households(audit):
    shared = person("x1", 11)
    await feed(audit.app, registry_event("household.registered", snapshot("hh-1", members=[shared])))
    await feed(audit.app, registry_event("household.registered", snapshot("hh-2", members=[person("x2", 13)])))
    assert await anomalies(audit, "duplicate_id_number") == []
    await feed(audit.app, registry_event("household.registered",
                                         snapshot("hh-3", village="B", members=[{**shared, "id": "y1"}])))
    [found] = await anomalies(audit, "duplicate_id_number")
    assert {h["household_id"] for h in found["facts"]["households"]} == {"hh-1", "hh-3"}
    assert "*" in found["facts"]["masked_id"] and shared["id_number"] not in str(found)
    # a deceased duplicate does not count
    await feed(audit.app, registry_event("household.updated", snapshot(
        "hh-3", version=2, village="B", members=[{**shared, "id": "y1", "deceased": True}])))
    assert await anomalies(audit, "duplicate_id_number") == []


async def test_no_visit_for_more_than_n_days(audit):
    await feed(audit.app, registry_event("household.registered", snapshot("hh-v", seq=1), time="2020-01-01T00:00:00"),
               registry_event("household.registered", snapshot("hh-s", seq=3), time="2020-01-01T00:00:00"))
    await feed(audit.app, registry_event("visit.recorded", snapshot("hh-v", seq=1),
                                         visit={"visited_at": "2020-05-01T09:00:00+08:00"}),
               registry_event("visit.recorded", snapshot("hh-s", seq=3),
                              visit={"visited_at": "2020-02-01T09:00:00+08:00"}))
    found = await anomalies(audit, "no_recent_visit")
    assert [f["household_id"] for f in found] == ["hh-s"] and found[0]["facts"]["last_visit"] == "2020-02-01"
    assert found[0]["facts"]["days"] == 150
    assert await anomalies(audit, "no_recent_visit", as_of="2020-04-15") == []  # 74 days: fine


async def test_above_line_two_years_not_exited(audit):
    # Nankang's line is the national one: 2018 = 2995, 2019 = 3218
    await feed(audit.app, registry_event("household.registered", snapshot("hh-i", income=(2018, "3500.00"))),
               registry_event("household.registered", snapshot("hh-j", seq=3, income=(2018, "3500.00"))))
    await feed(audit.app, registry_event("household.updated", snapshot("hh-i", version=2, income=(2019, "4100.00"))),
               registry_event("household.updated", snapshot("hh-j", version=2, seq=3, income=(2019, "3000.00"))))
    [found] = await anomalies(audit, "above_line_not_exited")
    assert found["household_id"] == "hh-i"
    assert [y["year"] for y in found["facts"]["years"]] == [2018, 2019]
    assert found["facts"]["years"][1]["line"] == "3218"
    assert len(found["evidence"]["record_ids"]) == 2


async def test_cadre_unpaired_before_exit(audit):
    await exit_household(audit, "hh-c1", override=False, ready=True, seq=1)
    await feed(audit.app, pairing_event("hh-c1", "cadre-1", "paired", time="2019-01-05T00:00:00"),
               pairing_event("hh-c1", "cadre-1", "unpaired", time="2020-04-01T00:00:00"))  # after exit: fine
    assert await anomalies(audit, "cadre_unpaired_before_exit") == []
    # pairing carried in the snapshot: the cadre disappears before the household exits
    await exit_household(audit, "hh-c2", override=False, ready=True, seq=3, cadres=["cadre-2"])
    await feed(audit.app, pairing_event("hh-c2", "cadre-2", "unpaired", time="2020-02-01T00:00:00"))
    [found] = await anomalies(audit, "cadre_unpaired_before_exit")
    assert found["household_id"] == "hh-c2" and found["facts"]["cadre_id"] == "cadre-2"
    assert found["facts"]["exit_date"] == "2020-03-10"


async def test_partner_lookup_followed_by_nothing(audit):
    looked, served = person("a", 21)["id_number"], person("b", 23)["id_number"]
    await feed(audit.app, access_event("bank-1", looked, "/v1/credit/eligibility", time="2020-03-01T00:00:00"),
               access_event("bank-1", served, "/v1/credit/eligibility", time="2020-03-01T00:00:00"),
               access_event("bank-1", served, "/v1/credit/loans", time="2020-03-05T00:00:00"))
    found = await anomalies(audit, "partner_lookup_without_benefit")
    assert len(found) == 1 and found[0]["facts"]["client_id"] == "bank-1"
    assert found[0]["facts"]["masked_id"] == looked[:6] + "********" + looked[-4:]
    assert looked not in str(found)
    # within the grace period nothing is flagged yet
    assert await anomalies(audit, "partner_lookup_without_benefit", as_of="2020-03-10") == []


# ---------------------------------------------------------------- queries

async def test_household_history_in_order_with_deciders(audit):
    await exit_household(audit, "hh-h", override=True, ready=False)
    await feed(audit.app, entitlement_event("hh-h", "industry.machinery", "granted", time="2020-01-02T00:00:01"),
               partition=1)
    body = (await audit.get("/v1/audit/households/hh-h/history")).json()
    times = [i["time"] for i in body["items"]]
    assert times == sorted(times) and len(body["items"]) == 5
    exit_item = body["items"][-1]
    assert exit_item["decision"]["status"] == "exited" and exit_item["actor"] == "office-1"
    assert body["items"][-2]["decision"]["step"]["override"] is True
    assert all(i["intact"] for i in body["items"])
    assert body["current"]["exit_override"] is True
    page = (await audit.get("/v1/audit/households/hh-h/history", params={"limit": 2})).json()
    rest = (await audit.get("/v1/audit/households/hh-h/history",
                            params={"limit": 10, "cursor": page["next_cursor"]})).json()
    assert [i["record_id"] for i in page["items"] + rest["items"]] == [i["record_id"] for i in body["items"]]
    assert (await audit.get("/v1/audit/households/nope/history")).status_code == 404


async def test_entitlement_stats_by_programme_area_and_period(audit):
    await feed(audit.app, registry_event("household.registered", snapshot("hh-a", village="A")),
               registry_event("household.registered", snapshot("hh-b", village="B", seq=3)))
    await feed(audit.app, entitlement_event("hh-a", "industry.machinery", "granted", amount="4000.00"),
               entitlement_event("hh-b", "industry.machinery", "granted", amount="1000.50"),
               entitlement_event("hh-b", "industry.machinery", "changed", amount="1200.00", version=2,
                                 time="2021-02-01T00:00:00"), partition=1)
    body = (await audit.get("/v1/audit/stats/entitlements", params={"area_level": "county"})).json()
    assert body["current"] == [{"program": "industry.machinery", "area": "360703", "unit": "year",
                                "entitlements": 2, "households": 2, "amount": "5200.00"}]
    periods = {d["period"]: d for d in body["decisions"]}
    assert periods["2020"]["granted"] == 2 and periods["2020"]["amount_decided"] == "5000.50"
    assert periods["2021"]["changed"] == 1
    by_township = (await audit.get("/v1/audit/stats/entitlements", params={"area": "360703105"})).json()
    assert by_township["current"][0]["area"] == "360703105" and by_township["current"][0]["amount"] == "4000.00"


async def test_area_limited_callers_see_only_their_area(audit):
    await exit_household(audit, "hh-x", override=True, ready=False, village="A")
    await exit_household(audit, "hh-y", override=True, ready=False, village="B", seq=3)
    township_a = audit.token_for("audit:read", area="360703105")
    response = await audit.get("/v1/supervision/anomalies", params={"rule": "exit_overridden", "as_of": AS_OF},
                               headers=township_a)
    assert [f["household_id"] for f in response.json()["items"]] == ["hh-x"]
    assert (await audit.get("/v1/supervision/anomalies", params={"area": "360703106"},
                            headers=township_a)).status_code == 403
    assert (await audit.get("/v1/audit/households/hh-y/history", headers=township_a)).status_code == 404
    assert (await audit.get("/v1/audit/households/hh-x/history", headers=township_a)).status_code == 200
    assert (await audit.get("/v1/supervision/anomalies", params={"rule": "nope"})).status_code == 422
    assert (await audit.get("/v1/supervision/anomalies", headers={"Authorization": ""})).status_code == 401


# ---------------------------------------------------------------- samples and progress

async def populate_exits(audit, counts: dict[str, int], year: int = 2020):
    n = 0
    for village, count in counts.items():
        for _ in range(count):
            n += 1
            hid = f"hh-{village}-{n:03d}"
            await feed(audit.app, registry_event(
                "household.status_changed",
                snapshot(hid, status="exited", exit_date=f"{year}-06-01", village=village, seq=n,
                         relocated=n % 7 == 0, moved_in=True,
                         members=[person(f"{hid}-1", n), person(f"{hid}-2", 500 + n, relation="spouse")])))


async def test_sample_is_reproducible_and_stratified(audit):
    await populate_exits(audit, {"A": 30, "B": 10, "C": 2})
    params = {"year": 2020, "n": 10, "seed": "42"}
    first = (await audit.get("/v1/supervision/sample", params=params)).json()
    again = (await audit.get("/v1/supervision/sample", params=params)).json()
    other = (await audit.get("/v1/supervision/sample", params={**params, "seed": "43"})).json()
    ids = [i["household_id"] for i in first["items"]]
    assert ids == [i["household_id"] for i in again["items"]] and len(ids) == 10
    assert ids != [i["household_id"] for i in other["items"]]
    strata = {s["township_code"]: s for s in first["strata"]}
    assert {k: s["sampled"] for k, s in strata.items()} == {"360703105": 7, "360703106": 2, "360703107": 1}
    assert sum(1 for i in first["items"] if i["township_code"] == "360703107") == 1
    assert all("*" in i["head_id_number"] for i in first["items"])
    assert {c["code"] for c in first["checklist"]} >= {"income_above_line", "three_guarantees", "complete_files"}
    # area-limited sample draws only from that township
    only_b = (await audit.get("/v1/supervision/sample", params={**params, "area": "360703106", "n": 3})).json()
    assert {i["township_code"] for i in only_b["items"]} == {"360703106"} and only_b["n"] == 3


async def test_sample_exports_csv_and_xlsx_with_masked_ids(audit):
    await populate_exits(audit, {"A": 4, "B": 2})
    params = {"year": 2020, "n": 3, "seed": "7"}
    raw = await audit.get("/v1/supervision/sample", params={**params, "format": "csv"})
    assert raw.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(raw.content.decode("utf-8-sig"))))
    assert rows[0][0].startswith("户编号") and len(rows) == 4
    assert all("*" in r[4] and len(r[4]) == 18 for r in rows[1:])
    xlsx = await audit.get("/v1/supervision/sample", params={**params, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.content)).worksheets[0]
    values = list(sheet.values)
    assert len(values) == 4 and all("*" in v[4] for v in values[1:])
    assert [r[0] for r in rows[1:]] == [v[0] for v in values[1:]]


async def test_progress_against_pack_targets_and_village_incidence(audit):
    await populate_exits(audit, {"A": 3, "B": 1}, year=2018)
    await feed(audit.app, registry_event("household.registered", snapshot("hh-poor", village="A", seq=900)))
    await feed(audit.app, village_event({"code": "360703105201", "name": "新村村", "population": 50,
                                         "exit_year": 2018}, 3))
    body = (await audit.get("/v1/supervision/progress", params={"area": "360703"})).json()
    ganzhou = next(a for a in body["areas"] if a["pack"] == "ganzhou-2016")
    y2018 = next(y for y in ganzhou["years"] if y["year"] == 2018)
    assert y2018["target_people"] == 202400 and y2018["exited_people"] == 8 and y2018["exited_households"] == 4
    assert y2018["exited_villages"] == 1 and y2018["target_villages"] == 505
    assert not any(a["pack"] == "shaoguan-2016" for a in body["areas"])  # Guangdong targets are not Nankang's
    village = next(v for v in body["villages"] if v["village_code"] == "360703105201")
    assert village["poor_people"] == 1 and village["population"] == 50 and village["incidence"] == "0.0200"
    assert village["exit_indicators"]["incidence_met"] is True
