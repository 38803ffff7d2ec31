"""Person-level categories through the registry API (issue 11 item 2), on SQLite and PostgreSQL.

The household's dibao / tekun_* categories follow its living members' flags on every write: create,
merge patch, member add / change / death / move, ledger import (shared/person_categories.py).
"""
from __future__ import annotations

from services.registry.imports.ledger import HEADER
from services.registry.tables import households
from tests.helpers import household_body
from tests.integration.registry.conftest import count
from tests.integration.registry.test_ledger_import import COL, to_csv, upload

PATCH = {"Content-Type": "application/merge-patch+json"}


async def test_a_tekun_household_with_several_members_and_none_flagged_is_refused_naming_them(registry):
    body = household_body(categories=["tekun_dispersed"])
    refused = await registry.post("/v1/households", json=body)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert "categories" in problem["detail"]
    in_chinese = (await registry.post("/v1/households", json=body, headers={"Accept-Language": "zh-CN"})).json()
    assert "户类型" in in_chinese["detail"] and in_chinese["errors"][0]["loc"] == ["body", "categories"]
    [error] = problem["errors"]
    assert error["loc"] == ["body", "categories"]
    names = [m["name"] for m in body["members"]]
    assert all(name in error["msg_zh"] and name in error["msg_en"] for name in names)
    assert "members[].tekun" in error["msg_en"]
    assert await count(registry.app, households) == 0


async def test_categories_follow_member_writes(registry):
    body = household_body()
    body["members"][1]["tekun"] = "dispersed"
    created = await registry.post("/v1/households", json=body)
    assert created.status_code == 201, created.text
    household = created.json()
    hid, spouse = household["id"], household["members"][1]["id"]
    assert household["categories"] == ["tekun_dispersed"]

    # A patch that clears the person's flag drops the category the flag gave.
    unflagged = await registry.patch(f"/v1/households/{hid}/members/{spouse}", json={"tekun": None}, headers=PATCH)
    assert unflagged.status_code == 200 and unflagged.json()["categories"] == []

    added = await registry.post(f"/v1/households/{hid}/members", json={
        "name": "钟老伯", "relation": "parent", "tekun": "concentrated", "monitoring": ["illness"]})
    assert added.status_code == 201, added.text
    elder = added.json()["members"][-1]
    assert added.json()["categories"] == ["tekun_concentrated"] and elder["monitoring"] == ["illness"]

    # Removing the category while the member still carries it is refused; the death of the member drops it.
    removed = await registry.patch(f"/v1/households/{hid}", json={"categories": []}, headers=PATCH)
    assert removed.status_code == 422 and "钟老伯" in removed.json()["errors"][0]["msg_zh"]
    died = await registry.post(f"/v1/households/{hid}/members/{elder['id']}/deceased", json={})
    assert died.status_code == 200 and died.json()["categories"] == []


async def test_dibao_covers_the_whole_household_and_the_cover_does_not_move_with_a_person(registry):
    farmer = (await registry.post("/v1/households", json=household_body())).json()
    elderly = await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"))
    assert elderly.status_code == 201, elderly.text
    elderly = elderly.json()
    assert elderly["categories"] == ["dibao"] and [m["dibao_covered"] for m in elderly["members"]] == [True, True]

    mover = elderly["members"][1]["id"]
    moved = await registry.post(f"/v1/households/{elderly['id']}/members/{mover}/move",
                                json={"to_household_id": farmer["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["from"]["categories"] == ["dibao"]
    assert moved.json()["to"]["categories"] == [] and moved.json()["to"]["members"][-1]["dibao_covered"] is None


async def test_ledger_import_reads_person_flags_and_reports_an_unflagged_tekun_household(registry):
    def rows(tekun: tuple[str, str]) -> list[list[str]]:
        people = [("钟大山", "360782197803150018", "户主"), ("刘秀英", "360782198001200022", "配偶")]
        lines = []
        for (name, number, relation), flag in zip(people, tekun):
            row = [""] * len(HEADER)
            row[COL["户编号"]], row[COL["县区代码"]], row[COL["户类型"]] = "hh-tk-1", "360703", "分散供养特困"
            row[COL["姓名"]], row[COL["身份证号"]], row[COL["与户主关系"]] = name, number, relation
            row[COL["特困供养"]] = flag
            lines.append(row)
        return lines

    refused = await upload(registry, to_csv(HEADER, rows(("", ""))))
    assert refused.status_code == 422, refused.text[:500]
    [error] = refused.json()["report"]["errors"]
    assert (error["row"], error["column"]) == (2, "户类型")
    assert "钟大山" in error["message"] and "刘秀英" in error["message"] and " / " in error["message"]

    imported = await upload(registry, to_csv(HEADER, rows(("", "分散供养"))))
    assert imported.status_code == 201, imported.text[:500]
    stored = (await registry.get("/v1/households/hh-tk-1", headers=registry.admin)).json()
    assert stored["categories"] == ["tekun_dispersed"]
    assert [m["tekun"] for m in stored["members"]] == [None, "dispersed"]
