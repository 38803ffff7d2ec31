"""GET /v1/households/{id}/file, the case file (一户一档), with the real benefits and audit apps in-process:
the registry reads them over HTTP (ASGI transports) with the caller's token; registry events reach
benefits and audit by draining the outboxes into their handlers, as the relay would. SQLite and PostgreSQL."""
from __future__ import annotations

import json
import uuid
from datetime import date

import httpx
import pytest
from sqlalchemy import select

from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.tables import outbox as registry_outbox
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import household_body, running_app


class Switchable(httpx.AsyncBaseTransport):
    """The real app behind an ASGI transport, or a service that is down / too slow, as the test says."""

    def __init__(self, app) -> None:
        self.inner, self.mode, self.calls = httpx.ASGITransport(app=app), "up", []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        return await self.inner.handle_async_request(request)


class System:
    pass


@pytest.fixture
async def system(databases, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), **common),
                         id_hash_key="k", checkpoint_schedule=False)
    to_benefits, to_audit = Switchable(benefits), Switchable(audit)
    settings = RegistrySettings(database_url=await databases.url("registry"), peer_timeout_s=1.0, **common)
    registry = create_registry(settings, benefits_transport=to_benefits, audit_transport=to_audit)
    admin = mint_token(settings, "admin", subject="admin-1")
    async with running_app(benefits), running_app(audit), running_app(registry, admin) as client:
        s = System()
        s.client, s.registry, s.benefits, s.audit = client, registry, benefits, audit
        s.to_benefits, s.to_audit, s.settings = to_benefits, to_audit, settings
        s.drained = {"registry": 0, "benefits": 0}
        s.headers = lambda scopes, **kw: {"Authorization": f"Bearer {mint_token(settings, scopes, **kw)}"}

        async def relay() -> None:
            """What the relay and the consumers do, in-process: registry events → benefits and audit,
            benefits' decisions → audit."""
            for source, app, table in (("registry", registry, registry_outbox), ("benefits", benefits, benefits_outbox)):
                async with app.state.sessionmaker() as session:
                    rows = (await session.execute(select(table).where(table.c.id > s.drained[source])
                                                  .order_by(table.c.id))).all()
                for row in rows:
                    envelope = Envelope.model_validate_json(row.payload)
                    if source == "registry":
                        async with transaction(benefits.state.sessionmaker) as session:
                            await apply_registry_event(session, envelope, date(2020, 6, 30))
                    async with transaction(audit.state.sessionmaker) as session:
                        await ingest(session, envelope, f"{row.topic}:0", audit.state.settings)
                    s.drained[source] = row.id
        s.relay = relay
        yield s


async def _household_with_history(s: System) -> str:
    """A registered farmer household with a cadre, a visit and a change, every event delivered."""
    created = await s.client.post("/v1/households", json=household_body(status="registered"))
    assert created.status_code == 201, created.text
    hid = created.json()["id"]
    cadre = await s.client.post("/v1/cadres", json={"id": "cadre-zhong", "name": "钟干部", "unit": "南康区财政局",
                                                    "phone": "13800000000", "area_code": "360703"})
    assert cadre.status_code == 201, cadre.text
    assert (await s.client.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-zhong"})).status_code == 201
    visit = await s.client.post("/v1/visits", headers=s.headers("visits:write", subject="cadre-zhong"), json={
        "client_visit_id": str(uuid.uuid4()), "household_id": hid, "visited_at": "2020-06-01T10:00:00+08:00",
        "location": {"lat": 25.66, "lon": 114.76}, "guarantees": {"drinking_water": True}})
    assert visit.status_code == 201, visit.text
    await s.relay()
    return hid


async def test_case_file_gathers_every_part_from_three_services(system):
    s = system
    hid = await _household_with_history(s)
    response = await s.client.get(f"/v1/households/{hid}/file")
    assert response.status_code == 200, response.text
    file = response.json()
    assert set(file) == {"household", "procedure", "visits", "pairings", "entitlements", "decisions", "monitoring",
                         "notes"}
    household = file["household"]
    assert household["id"] == hid and household["version"] >= 1
    assert household["members"][0]["id_number"] == "360782197803150018"  # admin: clear, like GET /households/{id}
    assert file["procedure"]["status"] == "registered" and "allowed_actions" in file["procedure"]
    assert [v["cadre_id"] for v in file["visits"]["items"]] == ["cadre-zhong"] and file["visits"]["next_cursor"] is None
    [pairing] = file["pairings"]
    assert pairing["cadre"] == {"id": "cadre-zhong", "name": "钟干部", "unit": "南康区财政局", "role": "pairing_cadre",
                                "phone": "13800000000", "area_code": "360703"}

    # benefits' answer, exactly as benefits gives it to this caller
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=s.benefits), base_url="http://b",
                                 headers={"Authorization": s.client.headers["Authorization"]}) as benefits:
        expected = (await benefits.get(f"/v1/households/{hid}/entitlements")).json()
    assert file["entitlements"] == expected
    amounts = {e["program"]: e["amount"] for e in file["entitlements"]["entitlements"] if e["eligible"]}
    assert amounts and all(isinstance(a, str) and "." in a for a in amounts.values())  # decimal yuan strings
    assert file["entitlements"]["household_version"] == household["version"]

    decisions = file["decisions"]
    ids = [r["id"] for r in decisions["items"]]
    assert ids == sorted(ids, reverse=True) and decisions["order"] == "newest_first"
    types = {r["type"] for r in decisions["items"]}
    assert {"household.registered", "entitlements.decided"} <= types
    decided = [r for r in decisions["items"] if r["type"] == "entitlements.decided"]
    assert {e["program"] for r in decided for e in r["data"]["entitlements"]} >= set(amounts)
    assert all(r["subject"] == f"household/{hid}" for r in decisions["items"])
    assert "360782197803150018" not in json.dumps(decisions)  # the ledger keeps masked numbers

    assert file["monitoring"]["monitored"] is False and file["monitoring"]["procedures"] == []
    assert file["monitoring"]["current"] is None and file["notes"] == []
    # the remote parts carried the caller's own token
    assert s.to_benefits.calls[-1].headers["authorization"] == s.client.headers["Authorization"]
    assert s.to_audit.calls[-1].headers["authorization"] == s.client.headers["Authorization"]
    assert s.to_audit.calls[-1].url.params["order"] == "desc"


async def test_an_office_gets_masked_numbers_and_another_area_gets_404(system):
    s = system
    hid = await _household_with_history(s)
    office = s.headers("registry:read benefits:read audit:read", area="360703105", subject="office-longmu")
    file = (await s.client.get(f"/v1/households/{hid}/file", headers=office)).json()
    member = file["household"]["members"][0]
    assert member["id_number"] == "360782********0018" and member["birth_year"] == 1978 and "birth_date" not in member
    assert file["entitlements"] is not None and file["decisions"]["items"]  # benefits and audit agree on the area
    assert "13800000000" not in json.dumps(file)  # a county-level cadre's phone is not the township's to read
    assert file["pairings"][0]["cadre"] == {"id": "cadre-zhong", "name": "钟干部", "unit": "南康区财政局",
                                            "role": "pairing_cadre"}

    calls = len(s.to_benefits.calls), len(s.to_audit.calls)
    elsewhere = s.headers("registry:read benefits:read audit:read", area="360703102")
    other = await s.client.get(f"/v1/households/{hid}/file", headers=elsewhere)
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert (len(s.to_benefits.calls), len(s.to_audit.calls)) == calls  # nothing asked of the peers
    unknown = await s.client.get("/v1/households/hh-nobody/file")
    assert unknown.status_code == 404
    assert (await s.client.get(f"/v1/households/{hid}/file", headers=s.headers("benefits:read"))).status_code == 403


async def test_missing_scopes_are_named_in_the_notes(system):
    s = system
    hid = await _household_with_history(s)
    reader = s.headers("registry:read audit:read")
    response = await s.client.get(f"/v1/households/{hid}/file", headers=reader)
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["entitlements"] is None and file["decisions"]["items"]
    [entitlements_note] = [n for n in file["notes"] if n["part"] == "entitlements"]
    assert entitlements_note["reason"] == "forbidden" and entitlements_note["required_scope"] == "benefits:read"
    assert "benefits:read" in entitlements_note["message_en"] and "benefits:read" in entitlements_note["message_zh"]
    assert file["monitoring"]["risk_assessment"] is None

    only_registry = (await s.client.get(f"/v1/households/{hid}/file", headers=s.headers("registry:read"))).json()
    assert only_registry["entitlements"] is None and only_registry["decisions"] is None
    assert {n["part"]: n.get("required_scope") for n in only_registry["notes"]} == {
        "entitlements": "benefits:read", "decisions": "audit:read"}
    assert only_registry["household"]["id"] == hid and only_registry["procedure"]["steps"] is not None


async def test_benefits_or_audit_down_leaves_that_part_null_and_the_rest_intact(system):
    s = system
    hid = await _household_with_history(s)
    whole = (await s.client.get(f"/v1/households/{hid}/file")).json()

    s.to_benefits.mode = "down"
    response = await s.client.get(f"/v1/households/{hid}/file")
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["entitlements"] is None and file["decisions"] == whole["decisions"]
    assert {k: file[k] for k in ("household", "procedure", "visits", "pairings")} == \
           {k: whole[k] for k in ("household", "procedure", "visits", "pairings")}
    [down] = [n for n in file["notes"] if n["part"] == "entitlements"]
    assert down["reason"] == "benefits_unreachable" and "ConnectError" in down["message_en"]

    s.to_benefits.mode, s.to_audit.mode = "up", "slow"
    file = (await s.client.get(f"/v1/households/{hid}/file")).json()
    assert file["entitlements"] == whole["entitlements"] and file["decisions"] is None
    [slow] = [n for n in file["notes"] if n["part"] == "decisions"]
    assert slow["reason"] == "audit_unreachable" and "within 1 s" in slow["message_en"]

    s.to_benefits.mode = s.to_audit.mode = "down"
    file = (await s.client.get(f"/v1/households/{hid}/file")).json()
    assert file["entitlements"] is None and file["decisions"] is None and file["household"] == whole["household"]
    assert sorted(n["reason"] for n in file["notes"]) == ["audit_unreachable", "benefits_unreachable"]


async def test_a_household_benefits_has_not_seen_yet(system):
    s = system
    created = await s.client.post("/v1/households", json=household_body("nankang-dibao-elderly", status="registered"))
    hid = created.json()["id"]  # not relayed: benefits and audit have not heard of it
    file = (await s.client.get(f"/v1/households/{hid}/file")).json()
    assert file["entitlements"] is None
    [missing] = [n for n in file["notes"] if n["part"] == "entitlements"]
    assert missing["reason"] == "not_found" and "not processed this household yet" in missing["message_en"]
    assert file["decisions"]["items"] == [] and file["decisions"]["next_cursor"] is None

    await s.relay()
    patched = await s.client.patch(f"/v1/households/{hid}", json={"income": {"year": 2020, "per_capita_net": "3100.00"}},
                                   headers={"If-Match": "1", "Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    file = (await s.client.get(f"/v1/households/{hid}/file")).json()  # version 2 not relayed yet
    [behind] = [n for n in file["notes"] if n["reason"] == "behind"]
    assert behind["entitlements_version"] == 1 and behind["household_version"] == 2


def test_the_launcher_tells_the_registry_where_audit_is(tmp_path, monkeypatch):
    from shared.launcher import LaunchConfig
    env = LaunchConfig(var_dir=tmp_path, ports={"registry": 18001, "benefits": 18002, "audit": 18003}).child_env()
    assert env["JZ_REGISTRY_AUDIT_URL"] == "http://127.0.0.1:18003"
    assert env["JZ_AUDIT_REGISTRY_PUBLIC_URL"] == "http://127.0.0.1:18001"  # the dashboard's case-file links
    monkeypatch.setenv("JZ_REGISTRY_AUDIT_URL", env["JZ_REGISTRY_AUDIT_URL"])
    monkeypatch.setenv("JZ_REGISTRY_PEER_TIMEOUT_S", "1.5")
    settings = RegistrySettings(var_dir=tmp_path)
    assert settings.audit_url == "http://127.0.0.1:18003" and settings.peer_timeout_s == 1.5
