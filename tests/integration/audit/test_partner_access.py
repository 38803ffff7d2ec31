"""The partner access log, queryable by client and by person, area-scoped, never in clear."""
from __future__ import annotations

import uuid

from shared.events import Envelope
from shared.idcard import mask_id_number
from tests.integration.audit.support import feed, person, registry_event, snapshot, t


def benefits_access_event(client: str, endpoint: str, id_number: str, *, household_id: str | None,
                          person_id: str | None, time: str) -> Envelope:
    """Shaped like services/benefits/partners/access.py: masked number plus registry ids."""
    data = {"client_id": client, "scope": "credit", "endpoint": endpoint, "id_number": mask_id_number(id_number),
            "decision_id": str(uuid.uuid4()), "decision": "eligible", "time": time + "Z"}
    if household_id:
        data.update(household_id=household_id, person_id=person_id)
    return Envelope(source="benefits", type="partner.access", subject=f"client/{client}", time=t(time),
                    actor=client, data=data)


async def test_access_log_by_client_and_by_person_with_area_scope(audit):
    member = person("p1", 31)
    await feed(audit.app, registry_event("household.registered", snapshot("hh-a", village="A", members=[member])))
    await feed(audit.app,
               benefits_access_event("bank-1", "/v1/credit/eligibility", member["id_number"], household_id="hh-a",
                                     person_id="p1", time="2020-03-01T00:00:00"),
               benefits_access_event("bank-2", "/v1/credit/eligibility", member["id_number"], household_id="hh-a",
                                     person_id="p1", time="2020-03-02T00:00:00"),
               benefits_access_event("bank-1", "/v1/credit/eligibility", "110101199003070015", household_id=None,
                                     person_id=None, time="2020-03-03T00:00:00"),
               partition=2)

    by_client = (await audit.get("/v1/supervision/partner-access", params={"client_id": "bank-1"})).json()["items"]
    assert [item["client_id"] for item in by_client] == ["bank-1", "bank-1"]
    assert all(item["kind"] == "lookup" for item in by_client)

    by_person = (await audit.get("/v1/supervision/partner-access", params={"person_id": "p1"})).json()["items"]
    assert sorted(item["client_id"] for item in by_person) == ["bank-1", "bank-2"]
    assert all(item["household_id"] == "hh-a" for item in by_person)
    assert member["id_number"] not in str(by_person) and by_person[0]["id_number"] == mask_id_number(member["id_number"])

    village_a = snapshot("hh-a", village="A")["village"]["code"]
    inside = await audit.get("/v1/supervision/partner-access", headers=audit.token_for("audit:read", area=village_a))
    outside = await audit.get("/v1/supervision/partner-access", headers=audit.token_for("audit:read", area="4402"))
    assert len(inside.json()["items"]) == 2 and outside.json()["items"] == []

    paged = (await audit.get("/v1/supervision/partner-access", params={"limit": 2})).json()
    rest = (await audit.get("/v1/supervision/partner-access", params={"limit": 2, "cursor": paged["next_cursor"]})).json()
    assert len(paged["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
