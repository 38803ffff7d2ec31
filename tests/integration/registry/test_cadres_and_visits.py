"""Cadres, pairing (不脱贫不脱钩) and visits: cadre scoping, idempotency, late visits, batches."""
from __future__ import annotations

import uuid
from datetime import timedelta, timezone

from services.registry.tables import fact_provenance, pairings, visits
from tests.helpers import household_body
from tests.integration.registry.conftest import count, events, state_counts


async def setup_pair(registry, cadre_id="cadre-zhong", **household):
    hid = (await registry.post("/v1/households", json=household_body(**household), headers=registry.admin)).json()["id"]
    cadre = await registry.post("/v1/cadres", json={"id": cadre_id, "name": "钟干部", "unit": "南康区财政局",
                                                    "role": "pairing_cadre", "phone": "13800000000",
                                                    "area_code": "360703"})
    assert cadre.status_code == 201, cadre.text
    paired = await registry.post(f"/v1/households/{hid}/pairings", json={"cadre_id": cadre_id})
    assert paired.status_code == 201, paired.text
    return hid, registry.token_headers("visits:write", subject=cadre_id)


def visit(hid, when, **fields):
    return {"client_visit_id": str(uuid.uuid4()), "household_id": hid, "visited_at": when.isoformat(),
            "location": {"lat": 25.66, "lon": 114.76}, **fields}


async def test_unpairing_a_household_that_has_not_exited_is_409(registry):
    hid, _ = await setup_pair(registry, status="registered")
    refused = await registry.delete(f"/v1/households/{hid}/pairings/cadre-zhong", headers={"Accept-Language": "zh"})
    assert refused.status_code == 409 and "不脱贫不脱钩" in refused.json()["title"]
    # handover: pair the replacement first, then the old cadre may go
    await registry.post("/v1/cadres", json={"id": "cadre-li", "name": "李干部", "unit": "区教育局"})
    assert (await registry.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-li"})).status_code == 201
    assert (await registry.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-li"})).status_code == 409
    ended = await registry.delete(f"/v1/households/{hid}/pairings/cadre-zhong", params={"reason": "调动"})
    assert ended.status_code == 200 and ended.json()["ended_at"]
    assert (await registry.delete(f"/v1/households/{hid}/pairings/cadre-li")).status_code == 409
    listed = (await registry.get(f"/v1/households/{hid}/pairings")).json()["items"]
    assert [(p["cadre_id"], p["ended_at"] is None) for p in listed] == [("cadre-zhong", False), ("cadre-li", True)]
    assert [e["type"] for e in await events(registry.app, hid)][-3:] == ["pairing.started", "pairing.started",
                                                                         "pairing.ended"]


async def test_an_exited_household_can_be_unpaired(registry):
    hid, _ = await setup_pair(registry, status="exited", exit_date="2019-12-01")
    assert (await registry.delete(f"/v1/households/{hid}/pairings/cadre-zhong")).status_code == 200


async def test_cadre_validation_and_list_filter(registry):
    bad = await registry.post("/v1/cadres", json={"name": "x", "unit": "y", "phone": "call me"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    hid, _ = await setup_pair(registry)
    other = (await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"))).json()["id"]
    assert (await registry.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "nobody"})).status_code == 404
    listed = (await registry.get("/v1/households", params={"cadre_id": "cadre-zhong"})).json()["items"]
    assert [h["id"] for h in listed] == [hid] and other != hid
    patched = await registry.patch("/v1/cadres/cadre-zhong", json={"unit": "南康区农业农村局"})
    assert patched.status_code == 200 and patched.json()["version"] == 2


async def test_cadre_records_visits_only_for_own_households(registry):
    hid, cadre = await setup_pair(registry)
    other = (await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"))).json()["id"]
    now = registry.clock.now
    ok = await registry.post("/v1/visits", json=visit(hid, now - timedelta(hours=1), notes="家中无人外出"), headers=cadre)
    assert ok.status_code == 201, ok.text
    refused = await registry.post("/v1/visits", json=visit(other, now), headers=cadre)
    assert refused.status_code == 403
    office = await registry.post("/v1/visits", json=visit(hid, now))  # registry:write is not visits:write
    assert office.status_code == 403
    assert await count(registry.app, visits) == 1
    listed = (await registry.get(f"/v1/households/{hid}/visits", headers=cadre)).json()["items"]
    assert listed[0]["notes"] == "家中无人外出" and listed[0]["cadre_id"] == "cadre-zhong"
    assert (await registry.get(f"/v1/households/{other}/visits", headers=cadre)).status_code == 403


async def test_visit_is_idempotent_by_client_visit_id(registry):
    hid, cadre = await setup_pair(registry)
    body = visit(hid, registry.clock.now - timedelta(days=1), guarantees={"drinking_water": True},
                 observations={"income": {"year": 2020, "per_capita_net": "6100.00"}})
    first = await registry.post("/v1/visits", json=body, headers=cadre)
    assert first.status_code == 201, first.text
    before = await state_counts(registry.app, visits, fact_provenance)
    again = await registry.post("/v1/visits", json=body, headers=cadre)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await state_counts(registry.app, visits, fact_provenance) == before
    intruder = registry.token_headers("visits:write", subject="cadre-other")
    assert (await registry.post("/v1/visits", json=body, headers=intruder)).status_code == 409


async def test_a_reused_client_visit_id_with_other_content_is_409_naming_the_stored_visit(registry):
    hid, cadre = await setup_pair(registry)
    first_body = visit(hid, registry.clock.now - timedelta(days=1),
                       observations={"income": {"year": 2020, "per_capita_net": "6100.00"}})
    first = await registry.post("/v1/visits", json=first_body, headers=cadre)
    assert first.status_code == 201, first.text
    stored = first.json()
    before = await state_counts(registry.app, visits, fact_provenance)

    changed = {**first_body, "observations": {"income": {"year": 2020, "per_capita_net": "4100.00"}},
               "notes": "another visit"}
    refused = await registry.post("/v1/visits", json=changed, headers={**cadre, "Accept-Language": "zh-CN"})
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["stored_visit"] == {"visit_id": stored["visit_id"], "household_id": hid,
                                       "visited_at": stored["visited_at"]}
    assert problem["differs"] == ["notes", "observations"]
    assert stored["visit_id"] in problem["detail"] and "未记录" in problem["detail"]
    assert await state_counts(registry.app, visits, fact_provenance) == before
    assert (await registry.get(f"/v1/households/{hid}")).json()["income"]["per_capita_net"] == "6100.00"

    # the same id for a visit to another household (also this cadre's) is refused the same way
    other = (await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"),
                                 headers=registry.admin)).json()["id"]
    assert (await registry.post(f"/v1/households/{other}/pairings", json={"cadre_id": "cadre-zhong"})).status_code == 201
    before = await state_counts(registry.app, visits, fact_provenance)
    elsewhere = await registry.post("/v1/visits", json={**first_body, "household_id": other}, headers=cadre)
    assert elsewhere.status_code == 409
    assert elsewhere.json()["differs"] == ["household_id"]
    assert elsewhere.json()["stored_visit"]["household_id"] == hid
    assert (await registry.get(f"/v1/households/{other}")).json()["version"] == 1
    assert (await registry.get(f"/v1/households/{other}/visits", headers=cadre)).json()["items"] == []

    # the identical visit (its time written in another offset) is still a plain resend
    in_utc = {**first_body, "visited_at": (registry.clock.now - timedelta(days=1)).astimezone(timezone.utc).isoformat()}
    again = await registry.post("/v1/visits", json=in_utc, headers=cadre)
    assert again.status_code == 200 and again.json() == stored
    assert await state_counts(registry.app, visits, fact_provenance) == before


async def test_observations_update_the_household_with_provenance(registry):
    hid, cadre = await setup_pair(registry)
    household = (await registry.get(f"/v1/households/{hid}")).json()
    elder = household["members"][0]["id"]
    body = visit(hid, registry.clock.now - timedelta(hours=2), guarantees={"housing_safety": False},
                 observations={"income": {"year": 2020, "per_capita_net": "6100.00"},
                               "housing": {"safety_grade": "C"},
                               "members": [{"id": elder, "health": "serious_illness"}]})
    result = (await registry.post("/v1/visits", json=body, headers=cadre)).json()
    assert result["household_version"] == 2
    assert set(result["applied"]) == {"income", "guarantees.housing_safety", "housing.safety_grade",
                                      f"members.{elder}.health"}
    assert "members.0.health" in result["changed_paths"] and "income.per_capita_net" in result["changed_paths"]
    after = (await registry.get(f"/v1/households/{hid}")).json()
    assert after["income"] == {"year": 2020, "per_capita_net": "6100.00"}
    assert after["housing"]["safety_grade"] == "C" and after["members"][0]["health"] == "serious_illness"
    published = await events(registry.app, hid)
    updated, recorded = published[-2], published[-1]
    assert updated["type"] == "household.updated"
    assert updated["data"]["provenance"]["visit_id"] == result["visit_id"]
    assert recorded["type"] == "visit.recorded" and recorded["data"]["visit"]["id"] == result["visit_id"]
    assert recorded["data"]["household"]["version"] == 2


async def test_a_late_visit_never_overwrites_newer_facts(registry):
    hid, cadre = await setup_pair(registry)
    now = registry.clock.now
    newer = visit(hid, now - timedelta(days=1), observations={"income": {"year": 2020, "per_capita_net": "6100.00"}})
    assert (await registry.post("/v1/visits", json=newer, headers=cadre)).status_code == 201
    late = visit(hid, now - timedelta(days=5), guarantees={"food": True},
                 observations={"income": {"year": 2020, "per_capita_net": "3000.00"}})
    result = (await registry.post("/v1/visits", json=late, headers=cadre)).json()
    assert [i["fact"] for i in result["ignored"]] == ["income"]
    assert result["applied"] == ["guarantees.food"]
    assert (await registry.get(f"/v1/households/{hid}")).json()["income"]["per_capita_net"] == "6100.00"
    # an office patch is a fact observed now: an older visit does not undo it either
    await registry.patch(f"/v1/households/{hid}", json={"housing": {"safety_grade": "B"}})
    stale = visit(hid, now - timedelta(hours=1), observations={"housing": {"safety_grade": "D"}})
    assert (await registry.post("/v1/visits", json=stale, headers=cadre)).json()["ignored"][0]["fact"] == \
        "housing.safety_grade"
    assert (await registry.get(f"/v1/households/{hid}")).json()["housing"]["safety_grade"] == "B"


async def test_bad_visits_are_4xx_and_write_nothing(registry):
    hid, cadre = await setup_pair(registry)
    now = registry.clock.now
    before = await state_counts(registry.app, visits)
    for body in (visit(hid, now, observations={"income": {"year": 2020, "per_capita_net": "abc"}}),
                 visit(hid, now, observations={"members": [{"id": "p-nobody", "health": "chronic"}]}),
                 visit(hid, now + timedelta(days=2)),
                 visit(hid, now, mood="happy"),
                 {**visit(hid, now), "client_visit_id": "not-a-uuid"}):
        response = await registry.post("/v1/visits", json=body, headers=cadre)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await registry.post("/v1/visits", json=visit("hh-none", now), headers=cadre)).status_code == 404
    assert await state_counts(registry.app, visits) == before


async def test_batch_resent_after_a_dropped_response_writes_nothing_twice(registry):
    hid, cadre = await setup_pair(registry)
    other = (await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"))).json()["id"]
    now = registry.clock.now
    batch = [visit(hid, now - timedelta(days=10 - i), guarantees={"food": True},
                   observations={"income": {"year": 2020, "per_capita_net": f"{5000 + i}.00"}}) for i in range(8)]
    batch.append(visit(other, now))                                           # not this cadre's household
    batch.append({**visit(hid, now), "visited_at": "yesterday"})              # invalid
    first = await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)
    assert first.status_code == 200, first.text
    statuses = [item["status"] for item in first.json()["items"]]
    assert statuses == [201] * 8 + [403, 422]
    assert first.json()["items"][9]["problem"]["errors"][0]["loc"][:3] == ["body", "visits", 9]
    counts_after_first = await state_counts(registry.app, visits, fact_provenance)

    # the phone never saw that response (connection dropped) and sends the whole batch again
    second = await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)
    assert [item["status"] for item in second.json()["items"]] == [200] * 8 + [403, 422]
    assert [i["result"] for i in second.json()["items"][:8]] == [i["result"] for i in first.json()["items"][:8]]
    assert await state_counts(registry.app, visits, fact_provenance) == counts_after_first
    household = (await registry.get(f"/v1/households/{hid}")).json()
    assert household["income"]["per_capita_net"] == "5007.00" and household["version"] == 9


async def test_batch_over_500_is_refused_whole(registry):
    hid, cadre = await setup_pair(registry)
    batch = [visit(hid, registry.clock.now) for _ in range(501)]
    response = await registry.post("/v1/visits:batch", json={"visits": batch}, headers=cadre)
    assert response.status_code == 422 and await count(registry.app, visits) == 0


async def test_first_secretary_of_the_village_may_visit(registry):
    # village team membership (set up directly: the villages API is tested separately)
    from services.registry.tables import village_team
    from shared.events import utcnow
    hid = (await registry.post("/v1/households", json=household_body())).json()["id"]
    async with registry.app.state.sessionmaker() as session, session.begin():
        await session.execute(village_team.insert().values(village_code="360703105201", cadre_id="sec-1",
                                                           role="first_secretary", started_at=utcnow()))
    secretary = registry.token_headers("visits:write", subject="sec-1")
    assert (await registry.post("/v1/visits", json=visit(hid, registry.clock.now), headers=secretary)).status_code == 201
    assert await count(registry.app, pairings) == 0


async def test_visits_racing_patches_never_publish_an_older_version_after_a_newer(registry):
    """A visit reads the household, then writes its event: on SQLite the read used to happen before the
    write lock, so a PATCH committing in between made the visit publish the older snapshot after the newer
    one (the chaos suite found "visit.recorded v1 after v3")."""
    import asyncio
    from datetime import datetime
    hid, cadre = await setup_pair(registry)
    now = datetime.now(timezone.utc)

    async def patch(n):
        for _ in range(5):
            answer = await registry.patch(f"/v1/households/{hid}", json={"income": {"year": 2019, "per_capita_net": f"{2800 + n}.00"}},
                                          headers={**registry.admin, "Content-Type": "application/merge-patch+json"})
            if answer.status_code != 412:
                return answer

    async def record(n):
        return await registry.post("/v1/visits", json=visit(hid, now - timedelta(minutes=n)), headers=cadre)

    answers = await asyncio.gather(*(f(n) for n in range(12) for f in (patch, record)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers if a.status_code >= 300]
    sequences = [e["sequence"] for e in await events(registry.app, hid)]
    assert sequences == sorted(sequences), sequences
