"""Procedures through the API: every step recorded, benefits consulted for exit, events with snapshots."""
from __future__ import annotations

import httpx
import pytest

from services.benefits.app import create_app as create_benefits_app
from services.registry.app import create_app
from services.registry.tables import procedure_steps
from shared.auth import mint_token
from shared.config import BenefitsSettings, RegistrySettings
from tests.helpers import household_body, running_app
from tests.integration.registry.conftest import state_counts, events


async def create(registry, **overrides) -> dict:
    response = await registry.post("/v1/households", json=household_body(**overrides), headers=registry.admin)
    assert response.status_code == 201, response.text
    return response.json()


async def act(registry, household_id, action, expect=200, **body):
    response = await registry.post(f"/v1/households/{household_id}/transitions", json={"action": action, **body})
    assert response.status_code == expect, response.text
    return response.json()


async def test_identification_walks_every_step_and_waits_for_the_notice_period(registry):
    household = await create(registry, identified_year=None)
    hid = household["id"]
    for action in ("apply", "village_review", "public_notice"):
        await act(registry, hid, action)
    running = await act(registry, hid, "township_review", expect=409)
    assert running["notice_ends_at"] and "public notice" in running["detail"]
    registry.clock.advance(days=7, minutes=1)
    for action in ("township_review", "county_approval"):
        assert (await act(registry, hid, action))["household"]["status"] == "candidate"
    done = await act(registry, hid, "announce")
    assert done["household"]["status"] == "registered"
    assert done["household"]["identified_year"] == registry.clock.now.year
    assert done["household"]["version"] == 7  # every step is a committed, versioned change

    procedure = (await registry.get(f"/v1/households/{hid}/procedure")).json()
    assert [s["action"] for s in procedure["steps"]] == [
        "apply", "village_review", "public_notice", "township_review", "county_approval", "announce"]
    assert all(s["actor"] == "office-1" and s["at"] and s["outcome"] for s in procedure["steps"])
    assert procedure["status"] == "registered" and procedure["procedure"] is None
    assert "propose_exit" in procedure["allowed_actions"]

    published = await events(registry.app, hid)
    assert [e["type"] for e in published][-1] == "household.status_changed"
    last = published[-1]
    assert last["data"]["household"]["status"] == "registered" and last["data"]["version"] == 7
    assert last["sequence"] == 7 and last["data"]["transition"]["action"] == "announce"
    assert {e["type"] for e in published[1:-1]} == {"household.procedure_step"}


async def test_illegal_transition_is_409_with_allowed_actions_and_writes_nothing(registry):
    hid = (await create(registry))["id"]
    before = await state_counts(registry.app, procedure_steps)
    problem = await act(registry, hid, "approve_exit", expect=409)
    assert problem["allowed_actions"] == ["apply", "remove"]
    assert problem["current_status"] == "candidate"
    unknown = await act(registry, hid, "teleport", expect=422)
    assert unknown["allowed_actions"] == ["apply", "remove"]
    assert await state_counts(registry.app, procedure_steps) == before
    assert registry.benefits.calls == []


async def test_register_shortcut_needs_admin(registry):
    hid = (await create(registry))["id"]
    assert (await act(registry, hid, "register", expect=403))["allowed_actions"] == ["apply", "remove"]
    response = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "register"},
                                   headers=registry.admin)
    assert response.status_code == 200 and response.json()["household"]["status"] == "registered"


async def test_exit_refused_with_unmet_criteria_then_overridden_with_reason(registry):
    hid = (await create(registry, status="registered"))["id"]
    registry.benefits.unmet = ["income_above_line", "housing_safety"]
    before = await state_counts(registry.app, procedure_steps)

    refused = await act(registry, hid, "propose_exit", expect=409, as_of="2020-06-30")
    assert refused["unmet"] == ["income_above_line", "housing_safety"] and refused["overridable"] is True
    call = registry.benefits.calls[-1]
    assert call["url"].endswith("/v1/evaluate") and call["body"]["as_of"] == "2020-06-30"
    assert call["body"]["household"]["id"] == hid
    no_reason = await act(registry, hid, "propose_exit", expect=422, override=True)
    assert no_reason["errors"][0]["loc"] == ["body", "reason"]
    assert await state_counts(registry.app, procedure_steps) == before

    proposed = await act(registry, hid, "propose_exit", override=True, reason="县扶贫办核实:收入已达标,数据待更新")
    assert proposed["step"]["override"] is True
    assert proposed["step"]["overridden_criteria"] == ["income_above_line", "housing_safety"]
    assert proposed["step"]["assessment"]["unmet"] == ["income_above_line", "housing_safety"]
    assert proposed["household"]["status"] == "registered"
    assert proposed["procedure"]["override"]["reason"].startswith("县扶贫办")
    event = (await events(registry.app, hid))[-1]
    assert event["type"] == "household.procedure_step"
    assert event["data"]["override"]["overridden_criteria"] == ["income_above_line", "housing_safety"]

    early = await act(registry, hid, "approve_exit", expect=409)
    assert "notice" in early["detail"]
    registry.clock.advance(days=8)
    exited = await act(registry, hid, "approve_exit")
    assert exited["household"]["status"] == "exited"
    assert exited["household"]["exit_date"] == registry.clock.now.date().isoformat()
    assert exited["step"]["override"] is True  # the proposal's override carries, and is recorded again
    last = (await events(registry.app, hid))[-1]
    assert last["type"] == "household.status_changed" and last["data"]["household"]["status"] == "exited"


async def test_service_token_sent_to_benefits_has_the_evaluate_scope(registry):
    import jwt
    hid = (await create(registry, status="registered"))["id"]
    await act(registry, hid, "propose_exit")
    token = registry.benefits.calls[-1]["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scope"] == "benefits:evaluate" and claims["sub"] == "service:registry"


async def test_relocated_household_cannot_exit_before_moving_in_even_with_override(registry):
    hid = (await create(registry, status="registered", categories=["relocated"],
                        relocation={"relocated": True, "moved_in": False, "site_type": "town"}))["id"]
    refused = await act(registry, hid, "propose_exit", expect=409, override=True, reason="想退出")
    assert refused["overridable"] is False and "relocation_moved_in" in refused["unmet"]


async def test_remove_needs_reason_and_publishes_status_changed_and_removed(registry):
    hid = (await create(registry, status="registered"))["id"]
    assert (await act(registry, hid, "remove", expect=422))["errors"][0]["loc"] == ["body", "reason"]
    removed = await act(registry, hid, "remove", reason="家庭收入核实超标,不符合识别标准")
    assert removed["household"]["status"] == "removed"
    assert removed["procedure"]["allowed_actions"] == []
    tail = (await events(registry.app, hid))[-2:]
    assert [e["type"] for e in tail] == ["household.status_changed", "household.removed"]
    assert all(e["data"]["household"]["status"] == "removed" and e["data"]["version"] == 2 for e in tail)


async def test_return_to_poverty_and_monitoring(registry):
    hid = (await create(registry, status="exited", exit_date="2019-12-01"))["id"]
    assert (await act(registry, hid, "start_monitoring"))["household"]["status"] == "monitored"
    assert (await act(registry, hid, "return_to_poverty"))["household"]["status"] == "returned"
    assert "propose_exit" in (await registry.get(f"/v1/households/{hid}/procedure")).json()["allowed_actions"]


async def test_benefits_unreachable_is_503_and_nothing_changes(registry):
    hid = (await create(registry, status="registered"))["id"]
    registry.benefits.down = True
    before = await state_counts(registry.app, procedure_steps)
    response = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "propose_exit"})
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    assert await state_counts(registry.app, procedure_steps) == before


async def test_stale_if_match_on_transition_is_412(registry):
    hid = (await create(registry))["id"]
    await act(registry, hid, "apply")
    stale = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "village_review"},
                                headers={"If-Match": '"1"'})
    assert stale.status_code == 412


async def test_area_scoped_token_cannot_move_a_household_outside_its_area(registry):
    hid = (await create(registry))["id"]
    outside = registry.token_headers("registry:write", area="360703102")
    response = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "apply"}, headers=outside)
    assert response.status_code == 404  # another area's household is not confirmed to exist


async def test_propose_exit_against_the_real_benefits_app(databases, tmp_path):
    """The registry's client talks to the real benefits /v1/evaluate in-process (ASGITransport)."""
    benefits_settings = BenefitsSettings(var_dir=tmp_path, database_url="sqlite+aiosqlite://", log_json=False,
                                         run_consumer=False)
    benefits_app = create_benefits_app(benefits_settings)
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False, benefits_url="http://benefits")
    app = create_app(settings, benefits_transport=httpx.ASGITransport(app=benefits_app))
    async with running_app(app, mint_token(settings, "admin")) as client:
        body = household_body(status="registered")
        hid = (await client.post("/v1/households", json=body)).json()["id"]
        refused = await client.post(f"/v1/households/{hid}/transitions",
                                    json={"action": "propose_exit", "as_of": "2020-06-30"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["unmet"]  # the example farmer's 2019 income is below the line
        patched = await client.patch(f"/v1/households/{hid}", json={"income": {"year": 2019,
                                                                                "per_capita_net": "9000.00"}})
        assert patched.status_code == 200
        accepted = await client.post(f"/v1/households/{hid}/transitions",
                                     json={"action": "propose_exit", "as_of": "2020-06-30"})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["step"]["assessment"]["result"] is True
