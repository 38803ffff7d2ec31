"""Members: add, change, move (one person.moved per household), deceased; one household per living person."""
from __future__ import annotations

from datetime import date

from services.registry.tables import person_index
from shared.idcard import make_id_number
from tests.helpers import household_body
from tests.integration.registry.conftest import count, events, state_counts

NEWBORN = {"name": "钟小芳", "id_number": make_id_number("360782", date(2020, 2, 2), 2), "sex": "F",
           "birth_date": "2020-02-02", "relation": "child"}


async def two_households(registry) -> tuple[dict, dict]:
    first = (await registry.post("/v1/households", json=household_body())).json()
    second = (await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"))).json()
    assert first.get("id") and second.get("id"), (first, second)
    return first, second


async def test_add_change_and_deceased_each_bump_the_version(registry):
    first, _ = await two_households(registry)
    hid = first["id"]
    added = await registry.post(f"/v1/households/{hid}/members", json=NEWBORN, headers={"If-Match": '"1"'})
    assert added.status_code == 201, added.text
    newborn = added.json()["members"][-1]
    assert newborn["id"] and newborn["name"] == "钟小芳" and added.json()["version"] == 2

    changed = await registry.patch(f"/v1/households/{hid}/members/{newborn['id']}", json={"health": "chronic"},
                                   headers={"Content-Type": "application/merge-patch+json"})
    assert changed.status_code == 200 and changed.json()["members"][-1]["health"] == "chronic"

    died = await registry.post(f"/v1/households/{hid}/members/{newborn['id']}/deceased",
                               json={"date_of_death": "2020-05-01"})
    assert died.status_code == 200 and died.json()["members"][-1]["deceased"] is True
    # the date itself is kept in the snapshot (insurers judge a stay on its dates), not only in the note
    assert died.json()["members"][-1]["date_of_death"] == "2020-05-01"
    assert died.json()["version"] == 4
    again = await registry.post(f"/v1/households/{hid}/members/{newborn['id']}/deceased", json={})
    assert again.status_code == 409
    last = (await events(registry.app, hid))[-1]
    assert last["type"] == "household.updated" and "members.4.deceased" in last["data"]["changed_paths"]
    # a deceased person no longer holds a place in the one-household index
    assert await count(registry.app, person_index) == 4 + 2


async def test_member_writes_reject_bad_input_without_writing(registry):
    first, second = await two_households(registry)
    hid, pid = first["id"], first["members"][0]["id"]
    before = await state_counts(registry.app)
    cases = [
        registry.post(f"/v1/households/{hid}/members", json={**NEWBORN, "id_number": NEWBORN["id_number"][:-1] + "0"}),
        registry.post(f"/v1/households/{hid}/members", json={**NEWBORN, "favourite_colour": "red"}),
        registry.post(f"/v1/households/{hid}/members", json={**NEWBORN, "id": "p-mine"}),
        registry.patch(f"/v1/households/{hid}/members/{pid}", json={"health": "great"}),
        registry.post(f"/v1/households/{hid}/members/{pid}/move", json={"to_household_id": hid}),
        registry.post(f"/v1/households/{hid}/members/{pid}/move", json={"to": second["id"]}),
    ]
    for pending in cases:
        response = await pending
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await registry.post(f"/v1/households/{hid}/members", json=NEWBORN,
                                headers={"If-Match": '"9"'})).status_code == 412
    assert (await registry.patch(f"/v1/households/{hid}/members/p-nobody", json={})).status_code == 404
    assert await state_counts(registry.app) == before


async def test_adding_a_person_living_elsewhere_is_409_naming_the_other_household(registry):
    first, second = await two_households(registry)
    person = {k: v for k, v in household_body()["members"][1].items()}
    response = await registry.post(f"/v1/households/{second['id']}/members", json=person)
    assert response.status_code == 409
    assert response.json()["conflicts"][0]["household_id"] == first["id"]


async def test_move_publishes_one_person_moved_per_household(registry):
    first, second = await two_households(registry)
    mover = first["members"][3]
    before_events = len(await events(registry.app))
    response = await registry.post(f"/v1/households/{first['id']}/members/{mover['id']}/move",
                                   json={"to_household_id": second["id"], "relation": "other", "reason": "婚迁"})
    assert response.status_code == 200, response.text
    moved = response.json()
    assert mover["id"] not in [m["id"] for m in moved["from"]["members"]]
    assert moved["to"]["members"][-1]["id"] == mover["id"] and moved["to"]["members"][-1]["relation"] == "other"
    published = (await events(registry.app))[before_events:]
    assert [(e["type"], e["subject"]) for e in published] == [
        ("person.moved", f"household/{first['id']}"), ("person.moved", f"household/{second['id']}")]
    assert published[0]["data"]["household"]["version"] == 2 and published[1]["data"]["version"] == 2
    assert published[1]["data"]["move"]["from_household_id"] == first["id"]
    # and the index now names the new household: adding the mover back to the first is a conflict
    back = await registry.post(f"/v1/households/{first['id']}/members",
                               json={**household_body()["members"][3]})
    assert back.status_code == 409 and back.json()["conflicts"][0]["household_id"] == second["id"]


async def test_move_outside_the_callers_area_is_refused(registry):
    first, second = await two_households(registry)
    body = household_body(members=[])
    body["village"] = {**body["village"], "code": "360703102201", "township_code": "360703102"}
    far = (await registry.post("/v1/households", json=body)).json()
    scoped = registry.token_headers("registry:read registry:write", area="360703105")
    response = await registry.post(f"/v1/households/{first['id']}/members/{first['members'][3]['id']}/move",
                                   json={"to_household_id": far["id"]}, headers=scoped)
    assert response.status_code == 404  # the target outside the area is not confirmed to exist
    assert len((await registry.get(f"/v1/households/{first['id']}")).json()["members"]) == 4


async def test_a_date_of_death_needs_a_deceased_member_born_before_it(registry):
    body = household_body()
    before = await state_counts(registry.app)
    spouse = body["members"][1]
    cases = {
        "not deceased": {**spouse, "date_of_death": "2020-01-01"},
        "before the birth date": {**spouse, "deceased": True, "date_of_death": "1900-01-01"},
        "in the future": {**spouse, "deceased": True, "date_of_death": "2099-01-01"},  # 2999: out of range
    }
    for expected, member in cases.items():
        response = await registry.post("/v1/households", json={**body, "members": [body["members"][0], member]})
        assert response.status_code == 422, response.text
        error = next(e for e in response.json()["errors"] if e["loc"][-1] == "date_of_death")
        assert expected in error["msg"], error
    assert await state_counts(registry.app) == before
    ok = await registry.post("/v1/households", json={**body, "members": [
        body["members"][0], {**spouse, "deceased": True, "date_of_death": "2020-03-01"}]})
    assert ok.status_code == 201 and ok.json()["members"][1]["date_of_death"] == "2020-03-01"
