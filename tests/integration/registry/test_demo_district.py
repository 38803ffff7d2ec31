"""The demo district as the registry holds it: areas with population and incidence, cadres, pairings,
visits and exits on 2016-2020 dates, stable ids and ID numbers, idempotent and quick to load."""
from __future__ import annotations

import time
from collections import Counter

from jingzhun_cli.demo import demo_households, load_demo_district
from tests.integration.registry.conftest import events


async def test_demo_district_loads_quickly_once_with_business_dates(registry):
    started = time.monotonic()
    report = await load_demo_district(registry.app.state.sessionmaker, registry.settings)
    elapsed = time.monotonic() - started
    assert report.households_created == 200 and report.cadres_created == 6
    assert elapsed < 20, f"demo load took {elapsed:.1f} s"
    again = await load_demo_district(registry.app.state.sessionmaker, registry.settings)
    assert (again.households_created, again.cadres_created, again.visits, again.transitions) == (0, 0, 0, 0)
    assert again.areas["unchanged"] == 11

    # areas through the bulk load, with population and incidence; village events carry the population
    village = (await registry.get("/v1/areas/360703105201", headers=registry.admin)).json()
    assert village["flags"]["population"] == 1980 and village["flags"]["is_deep_poverty"] is True
    assert village["flags"]["indicators"]["poverty_incidence_pct"] in ("4.80", "4.8")
    county = (await registry.get("/v1/areas/360703", headers=registry.admin)).json()
    assert (county["name"], county["flags"]["population"], county["flags"]["exit_year"]) == ("南康区", 861000, 2018)
    village_events = [e for e in await events(registry.app) if e["type"] == "village.updated"]
    assert {e["data"]["village"]["code"]: e["data"]["village"]["population"] for e in village_events} == {
        "360703102203": 3120, "360703102204": 2650, "360703105201": 1980, "360703105202": 2310,
        "360703110205": 2870}

    # pairings and visits are dated when they happened, not when the demo was loaded
    pairings = (await registry.get("/v1/households/hh-demo-0191/pairings", headers=registry.admin)).json()["items"]
    assert [(p["cadre_id"], p["started_at"][:10], (p["ended_at"] or "")[:10]) for p in pairings] == [
        ("cadre-demo-01", "2016-03-01", "2018-09-15"), ("cadre-demo-06", "2018-09-01", "")]
    visits = (await registry.get("/v1/households/hh-demo-0185/visits", headers=registry.admin)).json()["items"]
    assert sorted(v["visited_at"][:10] for v in visits) == ["2018-07-02", "2020-03-31"]

    # exits on various dates 2016-2020, through the workflow or brought in as exited
    exits = Counter()
    cursor = None
    while True:
        page = (await registry.get("/v1/households", params={"limit": 200, **({"cursor": cursor} if cursor else {})},
                                   headers=registry.admin)).json()
        for household in page["items"]:
            if household["exit_date"]:
                exits[household["exit_date"][:4]] += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert set(exits) >= {"2016", "2017", "2018", "2019", "2020"}, exits
    procedure = (await registry.get("/v1/households/hh-demo-0181/procedure", headers=registry.admin)).json()
    steps = [(s["action"], s["at"][:10], s["override"]) for s in procedure["steps"]]
    assert steps == [("propose_exit", "2019-11-20", True), ("approve_exit", "2019-11-28", True)]


async def test_demo_ids_and_id_numbers_are_stable(registry):
    district = demo_households()
    assert [hid for hid, _ in district] == [f"hh-demo-{i:04d}" for i in range(1, 201)]
    first, second = district[0][1], district[1][1]
    # what the README and partner examples rely on
    assert [m["id_number"] for m in first["members"]] == ["360782194806120013", "360782195011020021"]
    assert (first["status"], first["exit_date"]) == ("exited", "2019-12-20")
    assert second["status"] == "monitored" and second["members"][0]["id_number"] == "360782197803160013"
    numbers = [m["id_number"] for _, body in district for m in body["members"]]
    assert len(numbers) == len(set(numbers))
