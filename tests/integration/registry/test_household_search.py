"""POST /v1/households:search (by ID number in the body, or by name within a village) and the summary view
of GET /v1/households (issue 12, item 6), on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import logging

from tests.helpers import household_body

FARMER_HEAD = "360782197803150018"  # 钟大山, head of the nankang-farmer example (村 360703105201, 隆木乡)
VILLAGE = "360703105201"


async def _create(client, body) -> dict:
    response = await client.post("/v1/households", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _three_households(client) -> tuple[dict, dict, dict]:
    farmer = await _create(client, household_body())
    neighbour = household_body()
    neighbour["members"] = [{**m, "id_number": None, "name": name} for m, name in
                            zip(neighbour["members"], ["钟大海", "李秀兰", "钟小军", "钟小芳"])]
    neighbour = await _create(client, neighbour)
    elsewhere = await _create(client, household_body("nankang-dibao-elderly"))  # 示例村, 示例镇
    return farmer, neighbour, elderly_check(elsewhere)


def elderly_check(household: dict) -> dict:
    assert household["village"]["code"] == "360703102203"
    return household


async def test_search_by_id_number_finds_the_household_as_a_summary(registry, caplog):
    farmer, _, _ = await _three_households(registry)
    with caplog.at_level(logging.INFO, logger="registry.access"):
        found = await registry.post("/v1/households:search", json={"id_number": FARMER_HEAD})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["next_cursor"] is None and [i["id"] for i in body["items"]] == [farmer["id"]]
    item = body["items"][0]
    assert item["version"] == 1 and item["status"] == "candidate" and item["village"]["code"] == VILLAGE
    assert item["head"] == {"id": farmer["members"][0]["id"], "name": "钟大山", "relation": "head",
                            "id_number": "360782********0018", "deceased": False}
    assert item["member_count"] == 4 and item["living_members"] == 4
    assert [m["name"] for m in item["matched_members"]] == ["钟大山"]
    assert "members" not in item and "income" not in item  # a summary, not the snapshot
    assert "1978" not in json.dumps(item)  # neither the clear number nor a birth date
    # The look-up is logged (who, a keyed hash, what was found), the number never.
    lookups = [r for r in caplog.records if r.name == "registry.access"]
    assert len(lookups) == 1 and farmer["id"] in lookups[0].getMessage()
    assert FARMER_HEAD not in caplog.text and "id_number_hash=" in lookups[0].getMessage()


async def test_search_by_id_number_unknown_person_and_other_area_are_both_empty(registry):
    await _three_households(registry)
    unknown = await registry.post("/v1/households:search", json={"id_number": "11010519491231002X"})
    assert unknown.status_code == 200 and unknown.json() == {"items": [], "next_cursor": None}
    office = registry.token_headers("registry:read", area="360703102")  # 示例镇: the farmer lives in 隆木乡
    other_area = await registry.post("/v1/households:search", json={"id_number": FARMER_HEAD}, headers=office)
    assert other_area.status_code == 200 and other_area.json() == {"items": [], "next_cursor": None}
    own_area = await registry.post("/v1/households:search", json={"id_number": "360782194806120013"}, headers=office)
    assert [i["head"]["name"] for i in own_area.json()["items"]] == ["黄老根"]


async def test_search_by_name_and_village_is_a_prefix_match_paged_by_cursor(registry):
    farmer, neighbour, elsewhere = await _three_households(registry)
    exact = await registry.post("/v1/households:search", json={"name": "钟大山", "village_code": VILLAGE})
    assert exact.status_code == 200, exact.text
    assert [i["id"] for i in exact.json()["items"]] == [farmer["id"]]

    first = await registry.post("/v1/households:search", json={"name": "钟大", "village_code": VILLAGE, "limit": 1})
    page1 = first.json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    second = await registry.post("/v1/households:search", json={"name": "钟大", "village_code": VILLAGE, "limit": 1,
                                                                "cursor": page1["next_cursor"]})
    page2 = second.json()
    assert page2["next_cursor"] is None
    ids = [page1["items"][0]["id"], page2["items"][0]["id"]]
    assert ids == sorted([farmer["id"], neighbour["id"]])
    by_id = {i["id"]: i for i in page1["items"] + page2["items"]}
    assert [m["name"] for m in by_id[neighbour["id"]]["matched_members"]] == ["钟大海"]
    assert by_id[neighbour["id"]]["head"]["id_number"] is None

    # the village bounds the search: 黄老根 lives in 示例村
    other_village = await registry.post("/v1/households:search", json={"name": "黄", "village_code": VILLAGE})
    assert other_village.json()["items"] == []
    there = await registry.post("/v1/households:search", json={"name": "黄", "village_code": "360703102203"})
    assert [i["id"] for i in there.json()["items"]] == [elsewhere["id"]]
    # another area's village answers nothing, as if it had no such households
    office = registry.token_headers("registry:read", area="360703102")
    hidden = await registry.post("/v1/households:search", json={"name": "钟", "village_code": VILLAGE}, headers=office)
    assert hidden.status_code == 200 and hidden.json()["items"] == []


async def test_search_body_needs_exactly_one_form(registry):
    cases = {
        "neither": {},
        "both": {"id_number": FARMER_HEAD, "name": "钟大山", "village_code": VILLAGE},
        "name without village": {"name": "钟大山"},
        "village without name": {"village_code": VILLAGE},
        "bad check digit": {"id_number": "360782197803150019"},
        "unknown field": {"id_number": FARMER_HEAD, "q": "x"},
        "cursor with id number": {"id_number": FARMER_HEAD, "cursor": "abc"},
    }
    for label, body in cases.items():
        response = await registry.post("/v1/households:search", json=body)
        assert response.status_code == 422, (label, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["errors"], label
        assert "360782197803150019" not in response.text and FARMER_HEAD not in response.text, label
    neither = (await registry.post("/v1/households:search", json={})).json()
    assert "id_number" in neither["errors"][0]["msg"] and "village_code" in neither["errors"][0]["msg"]
    reader_only = await registry.post("/v1/households:search", json={"id_number": FARMER_HEAD},
                                      headers=registry.token_headers("visits:write"))
    assert reader_only.status_code == 403


async def test_list_summary_view_and_fields(registry):
    farmer, neighbour, elsewhere = await _three_households(registry)
    full = await registry.get("/v1/households", params={"limit": 10})
    summary = await registry.get("/v1/households", params={"limit": 10, "view": "summary"})
    assert full.status_code == summary.status_code == 200
    assert [i["id"] for i in summary.json()["items"]] == [i["id"] for i in full.json()["items"]]
    by_id = {i["id"]: i for i in summary.json()["items"]}
    assert by_id[farmer["id"]]["head"]["name"] == "钟大山" and by_id[farmer["id"]]["member_count"] == 4
    assert by_id[elsewhere["id"]]["village"]["name"] == "示例村"
    assert all("members" not in i and "matched_members" not in i for i in by_id.values())
    assert len(summary.content) * 2 < len(full.content)

    picked = await registry.get("/v1/households", params={"fields": "status,income"})
    assert picked.status_code == 200
    assert all(set(i) == {"id", "status", "income"} for i in picked.json()["items"])
    assert {i["id"]: i["income"] for i in picked.json()["items"]}[farmer["id"]] == farmer["income"]
    members = await registry.get("/v1/households", params={"fields": "members"})  # masked like the snapshot
    assert {i["id"]: i for i in members.json()["items"]}[farmer["id"]]["members"][0]["id_number"] == "360782********0018"

    for params in ({"fields": "status,nonsense"}, {"view": "summary", "fields": "status"}, {"view": "compact"},
                   {"fields": ""}):
        bad = await registry.get("/v1/households", params=params)
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json", (params, bad.text)
    assert "nonsense" in (await registry.get("/v1/households", params={"fields": "status,nonsense"})).text
