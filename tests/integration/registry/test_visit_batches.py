"""Visit batches are recorded in one transaction but answer exactly as visits sent one by one."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select

from services.registry.tables import fact_provenance, household_versions, visits
from services.registry.visits import service as visit_service
from tests.helpers import household_body
from tests.integration.registry.conftest import count, events, state_counts
from tests.integration.registry.test_cadres_and_visits import setup_pair, visit


def _anonymous_body() -> dict:
    """A household body without ID numbers, so that two identical households may coexist."""
    body = household_body()
    for member in body["members"]:
        member.pop("id_number", None)
    return body


async def _second_household(registry, cadre_id="cadre-zhong") -> str:
    hid = (await registry.post("/v1/households", json=_anonymous_body(), headers=registry.admin)).json()["id"]
    assert (await registry.post(f"/v1/households/{hid}/pairings", json={"cadre_id": cadre_id})).status_code == 201
    return hid


async def test_one_bad_item_in_the_middle_does_not_stop_the_others(registry):
    hid, cadre = await setup_pair(registry)
    elder = (await registry.get(f"/v1/households/{hid}")).json()["members"][0]["id"]
    now = registry.clock.now
    batch = [visit(hid, now - timedelta(days=3), observations={"income": {"year": 2020, "per_capita_net": "5100.00"}}),
             visit(hid, now - timedelta(days=2), observations={"housing": {"safety_grade": "C"}}),
             {**visit(hid, now), "visited_at": "yesterday"},                                    # invalid body
             visit(hid, now, observations={"members": [{"id": "p-nobody", "health": "chronic"}]}),  # not a member
             visit("hh-none", now),                                                             # no such household
             visit(hid, now - timedelta(days=1), observations={"income": {"year": 2020, "per_capita_net": "5200.00"},
                                                               "members": [{"id": elder, "health": "chronic"}]})]
    response = await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["status"] for item in body["items"]] == [201, 201, 422, 422, 404, 201]
    assert (body["recorded"], body["replayed"], body["failed"]) == (3, 0, 3)
    assert body["items"][2]["problem"]["errors"][0]["loc"][:3] == ["body", "visits", 2]
    assert [item["result"]["household_version"] for item in body["items"] if item["status"] == 201] == [2, 3, 4]
    assert await count(registry.app, visits) == 3
    household = (await registry.get(f"/v1/households/{hid}")).json()
    assert household["version"] == 4 and household["income"]["per_capita_net"] == "5200.00"
    assert household["members"][0]["health"] == "chronic" and household["housing"]["safety_grade"] == "C"
    types = [e["type"] for e in await events(registry.app, hid)]
    assert types[-6:] == ["household.updated", "visit.recorded"] * 3


def _visits_for(hid: str, elder: str, now) -> list[dict]:
    """The same household visited many times in one batch: out of order, late, repeated, with bad items."""
    items = [
        visit(hid, now - timedelta(days=3), guarantees={"food": True},
              observations={"income": {"year": 2020, "per_capita_net": "5000.00"}}),
        visit(hid, now - timedelta(days=1), observations={"income": {"year": 2020, "per_capita_net": "6000.00"},
                                                          "members": [{"id": elder, "health": "serious_illness"}]}),
        visit(hid, now - timedelta(days=5), guarantees={"food": False},      # late: income ignored, rest applies
              observations={"income": {"year": 2020, "per_capita_net": "3000.00"},
                            "housing": {"safety_grade": "D"}}),
        visit(hid, now, observations={"members": [{"id": "p-nobody", "health": "chronic"}]}),  # 422 in the middle
        visit(hid, now + timedelta(days=2)),                                                   # 422: future
        visit(hid, now - timedelta(days=2), observations={"housing": {"safety_grade": "C"},
                                                          "members": [{"id": elder, "health": "healthy"}]}),
        None,                                                                  # resend of item 0 inside the batch
        visit(hid, now - timedelta(hours=1), notes="家中有人"),                  # no observations: no new version
        visit(hid, now - timedelta(hours=4),                                   # confirms income: no new version
              observations={"income": {"year": 2020, "per_capita_net": "6000.00"}}),
        visit(hid, now - timedelta(hours=3), guarantees={"food": True, "drinking_water": True},
              observations={"water": {"in_tap_coverage": True}}),
        {**visit(hid, now), "visited_at": "yesterday"},                         # invalid body
        visit(hid, now - timedelta(hours=2), observations={"income": {"year": 2020, "per_capita_net": "6500.00"}}),
    ]
    items[6] = dict(items[0])
    return items


def _normalised(value, replacements: dict[str, str]):
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


async def _history(registry, hid: str) -> dict:
    async with registry.app.state.sessionmaker() as session:
        versions = [(row.version, row.event_type, row.changed_paths, row.note is not None) for row in (
            await session.execute(select(household_versions).where(household_versions.c.household_id == hid)
                                  .order_by(household_versions.c.version))).all()]
        facts = {row.fact: (row.observed_at.isoformat(), row.source, row.version) for row in (
            await session.execute(select(fact_provenance).where(fact_provenance.c.household_id == hid))).all()}
    published = [(e["type"], e["sequence"], e["data"].get("household")) for e in await events(registry.app, hid)]
    return {"snapshot": (await registry.get(f"/v1/households/{hid}")).json(), "versions": versions,
            "facts": facts, "events": published}


async def test_a_batch_on_one_household_ends_as_the_same_visits_sent_one_by_one(registry):
    one, cadre = await setup_pair(registry, members=_anonymous_body()["members"])
    other = await _second_household(registry)
    now = registry.clock.now
    ids = {}
    for hid in (one, other):
        ids[hid] = [m["id"] for m in (await registry.get(f"/v1/households/{hid}")).json()["members"]]
    by_batch = _visits_for(one, ids[one][0], now)
    one_by_one = _visits_for(other, ids[other][0], now)

    batch = (await registry.post("/v1/visits:batch", json={"visits": by_batch}, headers=cadre)).json()["items"]
    singles = []
    for body in one_by_one:
        response = await registry.post("/v1/visits", json=body, headers=cadre)
        singles.append((response.status_code, response.json()))

    assert [item["status"] for item in batch] == [status for status, _ in singles] == \
        [201, 201, 201, 422, 422, 201, 200, 201, 201, 201, 422, 201]
    visit_ids = {}
    for item, (status, single) in zip(batch, singles):
        if status >= 400:
            if item["index"] != 10:  # the single endpoint's own body validation words item 10 differently
                assert item["problem"]["title"] == single["title"] and item["problem"]["detail"] == single["detail"]
            continue
        visit_ids[item["result"]["visit_id"]] = visit_ids[single["visit_id"]] = f"visit-{item['index']}"
    replacements = {one: "HH", other: "HH", **{a: f"P{i}" for i, a in enumerate(ids[one])},
                    **{b: f"P{i}" for i, b in enumerate(ids[other])}, **visit_ids,
                    **{a["client_visit_id"]: f"C{i}" for i, a in enumerate(by_batch)},
                    **{b["client_visit_id"]: f"C{i}" for i, b in enumerate(one_by_one)}}
    for item, (status, single) in zip(batch, singles):
        if status < 400:
            drop = ("recorded_at",)
            assert _normalised({k: v for k, v in item["result"].items() if k not in drop}, replacements) == \
                _normalised({k: v for k, v in single.items() if k not in drop}, replacements)

    batched, sent_singly = await _history(registry, one), await _history(registry, other)
    assert _normalised(batched, replacements) == _normalised(sent_singly, replacements)
    assert batched["snapshot"]["version"] == 6 and batched["snapshot"]["income"]["per_capita_net"] == "6500.00"
    assert batched["snapshot"]["housing"]["safety_grade"] == "C"

    # and a resend of the whole batch writes nothing
    before = await state_counts(registry.app, visits, fact_provenance, household_versions)
    again = (await registry.post("/v1/visits:batch", json={"visits": by_batch}, headers=cadre)).json()["items"]
    assert [item["status"] for item in again] == [200, 200, 200, 422, 422, 200, 200, 200, 200, 200, 422, 200]
    assert [i.get("result") for i in again if i["status"] == 200] == \
        [i["result"] for i in batch if i["status"] in (200, 201)]
    assert await state_counts(registry.app, visits, fact_provenance, household_versions) == before


async def test_a_batch_that_meets_a_concurrent_writer_is_recorded_one_by_one(registry, monkeypatch):
    hid, cadre = await setup_pair(registry)
    now = registry.clock.now
    real_write = visit_service._write

    async def interrupted(session, touched, staged):
        await real_write(session, touched, staged)  # written, then a concurrent change is detected
        raise visit_service._Concurrent("simulated")

    monkeypatch.setattr(visit_service, "_write", interrupted)
    batch = [visit(hid, now - timedelta(days=3 - i), observations={"income": {"year": 2020,
                                                                              "per_capita_net": f"{5000 + i}.00"}})
             for i in range(3)]
    response = (await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)).json()
    assert [item["status"] for item in response["items"]] == [201, 201, 201]
    assert [item["result"]["household_version"] for item in response["items"]] == [2, 3, 4]
    assert await count(registry.app, visits) == 3  # the interrupted batch's rows were rolled back
    assert (await registry.get(f"/v1/households/{hid}")).json()["version"] == 4


async def test_a_batch_item_reusing_a_client_visit_id_for_other_content_is_409_and_the_others_proceed(registry):
    from shared.auth import Principal
    hid, cadre = await setup_pair(registry)
    other = await _second_household(registry)
    now = registry.clock.now
    recorded = visit(hid, now - timedelta(days=2), observations={"housing": {"safety_grade": "C"}})
    first = (await registry.post("/v1/visits", json=recorded, headers=cadre)).json()

    fresh = visit(hid, now - timedelta(days=1), guarantees={"food": True})
    twin = visit(other, now - timedelta(hours=5))
    batch = [fresh,
             {**recorded, "household_id": other},                            # stored id, another household
             recorded,                                                        # a true resend
             {**recorded, "observations": {"housing": {"safety_grade": "D"}}},  # stored id, other observations
             twin,
             {**twin, "notes": "the phone reused the id"}]                   # an id used earlier in this batch
    before = await state_counts(registry.app, visits)
    body = (await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)).json()
    assert [item["status"] for item in body["items"]] == [201, 409, 200, 409, 201, 409]
    assert (body["recorded"], body["replayed"], body["failed"]) == (2, 1, 3)
    assert body["items"][1]["problem"]["stored_visit"] == {"visit_id": first["visit_id"], "household_id": hid,
                                                           "visited_at": first["visited_at"]}
    assert body["items"][1]["problem"]["differs"] == ["household_id"]
    assert body["items"][3]["problem"]["differs"] == ["observations"]
    assert body["items"][5]["problem"]["stored_visit"]["visit_id"] == body["items"][4]["result"]["visit_id"]
    assert body["items"][5]["problem"]["differs"] == ["notes"]
    assert body["items"][2]["result"] == first
    assert await state_counts(registry.app, visits) == (before[0], before[1] + 2, before[2] + 2)
    assert (await registry.get(f"/v1/households/{hid}")).json()["housing"]["safety_grade"] == "C"
    assert [v["result"]["visit_id"] for v in
            (await registry.get(f"/v1/households/{other}/visits", headers=cadre)).json()["items"]] == \
        [body["items"][4]["result"]["visit_id"]]

    # the one-by-one path (the batch's fallback) answers the same
    principal = Principal(subject="cadre-zhong", scopes=frozenset({"visits:write"}))
    again = await visit_service.record_batch_one_by_one(registry.app.state.sessionmaker, batch, principal, now=now)
    assert [item["status"] for item in again] == [200, 409, 200, 409, 200, 409]
    assert [item.get("problem", {}).get("differs") for item in again] == \
        [None, ["household_id"], None, ["observations"], None, ["notes"]]
    assert await state_counts(registry.app, visits) == (before[0], before[1] + 2, before[2] + 2)
