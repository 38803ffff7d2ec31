"""Administrative areas: bulk CSV load (all or nothing), flags, village.updated, work teams."""
from __future__ import annotations

from services.registry.tables import areas
from tests.integration.registry.conftest import count, events

AREAS_CSV = """代码,名称,级别,贫困村,深度贫困村,退出年度,集体经济收入,贫困发生率,有特色产业,有路通村屯
36,江西省,省,,,,,,,
3607,赣州市,市,,,,,,,
360703,南康区,县,是,,2019,,,,
360703105,隆木乡,乡镇,,,,,,,
360703105201,新村村,村,是,是,2019,52000,2.1%,是,是
360703105202,石坑村,村,否,否,,,,,
360703105201001,新村一组,组,,,,,,,
"""


async def upload(registry, text: str, name="areas.csv", **kw):
    return await registry.post("/v1/areas:bulk", files={"file": (name, text.encode(), "text/csv")}, **kw)


async def test_bulk_load_builds_the_tree_with_flags_and_publishes_village_updated(registry):
    loaded = await upload(registry, AREAS_CSV)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json() == {"rows": 7, "created": 7, "updated": 0, "unchanged": 0}
    village = (await registry.get("/v1/areas/360703105201")).json()
    assert village["level"] == "village" and village["parent_code"] == "360703105"
    assert village["flags"]["is_poor"] is True and village["flags"]["collective_income"] == "52000.00"
    assert village["flags"]["indicators"] == {"featured_industry": True, "road_access": True,
                                              "poverty_incidence_pct": "2.1"}
    county = (await registry.get("/v1/areas/360703")).json()
    assert county["flags"] == {"is_poor": True, "is_deep_poverty": False, "exit_year": 2019}
    children = (await registry.get("/v1/areas", params={"parent_code": "360703105"})).json()["items"]
    assert [c["code"] for c in children] == ["360703105201", "360703105202"]
    village_events = [e for e in await events(registry.app) if e["type"] == "village.updated"]
    assert {e["data"]["village"]["code"] for e in village_events} == {"360703105201", "360703105202"}
    data = next(e for e in village_events if e["subject"] == "village/360703105201")["data"]
    assert data["village"]["township_name"] == "隆木乡" and data["village"]["is_deep_poverty_village"] is True
    assert data["version"] == 1

    again = await upload(registry, AREAS_CSV)  # same file: nothing changes, nothing is published
    assert again.json()["unchanged"] == 7 and len(await events(registry.app)) == 7


async def test_bad_area_file_reports_rows_and_loads_nothing(registry):
    bad = AREAS_CSV.replace("360703105202,石坑村,村,否", "36070310520X,石坑村,村,否").replace(
        "2019,52000", "二〇一九,52000") + "999999999999,孤村,村,,,,,,,\n"
    response = await upload(registry, bad)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    report = response.json()["report"]["errors"]
    assert {e["row"] for e in report} == {6, 7, 8, 9}  # 8: its parent (row 6) is invalid
    assert await count(registry.app, areas) == 0 and await events(registry.app) == []


async def test_patch_flags_and_team_publish_village_updated_with_new_version(registry):
    await upload(registry, AREAS_CSV)
    patched = await registry.patch("/v1/areas/360703105202", json={"flags": {"is_poor": True}})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    for cadre in ("sec-1", "tm-1", "tm-2"):
        await registry.post("/v1/cadres", json={"id": cadre, "name": cadre, "unit": "区直单位"})
    team = await registry.put("/v1/villages/360703105202/team",
                              json={"first_secretary": "sec-1", "members": ["tm-1", "tm-2"]})
    assert team.status_code == 200 and team.json()["first_secretary"] == "sec-1"
    last = (await events(registry.app))[-1]
    assert last["type"] == "village.updated" and last["data"]["version"] == 3
    assert last["data"]["village"]["work_team"]["members"] == ["tm-1", "tm-2"]
    assert last["data"]["village"]["is_poor_village"] is True
    unknown = await registry.put("/v1/villages/360703105202/team", json={"first_secretary": "ghost"})
    assert unknown.status_code == 422
    not_village = await registry.put("/v1/villages/360703105/team", json={})
    assert not_village.status_code == 422


async def test_area_writes_are_validated_and_scoped(registry):
    await upload(registry, AREAS_CSV)
    wrong_level = await registry.put("/v1/areas/360703105203", json={"code": "360703105203", "name": "x",
                                                                     "level": "township"})
    assert wrong_level.status_code == 422
    orphan = await registry.put("/v1/areas/360703199201", json={"code": "360703199201", "name": "孤村"})
    assert orphan.status_code == 422
    scoped = registry.token_headers("registry:write registry:read", area="360703102")
    outside = await registry.put("/v1/areas/360703105203", json={"code": "360703105203", "name": "新村"},
                                 headers=scoped)
    assert outside.status_code == 403
    assert (await registry.get("/v1/areas", params={"level": "village"}, headers=scoped)).json()["items"] == []


async def test_village_change_refreshes_the_village_in_its_households(registry):
    from tests.helpers import household_body
    await upload(registry, AREAS_CSV)
    body = household_body(members=[])
    body["village"] = {"code": "360703105202", "name": "石坑村", "township_code": "360703105",
                       "township_name": "隆木乡", "is_poor_village": False, "is_deep_poverty_village": False}
    created = (await registry.post("/v1/households", json=body)).json()
    untouched = (await registry.patch("/v1/areas/360703105202", json={"flags": {"exit_year": 2020}})).json()
    assert untouched["version"] == 2
    assert (await registry.get(f"/v1/households/{created['id']}")).json()["version"] == 1  # nothing it carries changed

    await registry.patch("/v1/areas/360703105202", json={"flags": {"is_poor": True, "is_deep_poverty": True}})
    household = (await registry.get(f"/v1/households/{created['id']}")).json()
    assert household["version"] == 2
    assert household["village"]["is_poor_village"] is True and household["village"]["is_deep_poverty_village"] is True
    updated = [e for e in await events(registry.app, created["id"]) if e["type"] == "household.updated"]
    assert len(updated) == 1
    assert sorted(updated[0]["data"]["changed_paths"]) == ["village.is_deep_poverty_village", "village.is_poor_village"]
