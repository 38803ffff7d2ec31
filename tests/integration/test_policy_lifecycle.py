"""Policy lifecycle over HTTP on SQLite and PostgreSQL: validate → diff → simulate → publish with an
effective date → bulk recompute → `policy.published` in the outbox → audit chains it; evaluations on
dates before the effective date do not change; a second process sees the publication without restart."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.benefits.app import create_app
from services.benefits.consumer import store_snapshot
from services.benefits.tables import outbox, policy_publications, recompute_jobs
from shared.auth import mint_token
from shared.config import AuditSettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import REPO, eventually, example, running_app
from tests.integration.test_benefits_service import settings_for

TODAY = dt.date(2021, 6, 30)  # the service's evaluation date: inside the transition period
EFFECTIVE = "2021-01-01"

# The worked example of docs/policy.md: nankang-2020 kept for 2021-2025, one amount changed. The new
# amount is the office's decision, not the seeds', hence default_not_in_seeds with a note.
NANKANG_2021 = (REPO / "docs" / "examples" / "nankang-2021.yaml").read_text(encoding="utf-8")


@pytest.fixture
async def benefits(databases, tmp_path):
    """A running benefits app (admin token) and a second process on the same database."""
    url = await databases.url("benefits")
    contexts = []

    async def start(scopes: str = "benefits:read benefits:evaluate admin", reload_s: float | None = None):
        settings = settings_for(tmp_path, url, evaluation_date=TODAY)
        app = create_app(settings)
        if reload_s is not None:
            app.state.policy_reload_interval_s = reload_s
        context = running_app(app, mint_token(settings, scopes, subject="office-admin"))
        client = await context.__aenter__()
        client.app = app
        contexts.append(context)
        return client

    yield start
    while contexts:
        await contexts.pop().__aexit__(None, None, None)


def farmer(household_id: str = "hh-farmer") -> dict:
    snapshot = example("nankang-farmer")["household"]
    return {**snapshot, "id": household_id, "version": 1}


async def evaluate(client, on: str) -> dict:
    response = await client.post("/v1/evaluate", json={"household": farmer(), "as_of": on})
    assert response.status_code == 200, response.text
    return response.json()


def amount(evaluation: dict, program: str) -> str | None:
    return next((e["amount"] for e in evaluation["entitlements"] if e["program"] == program and e["eligible"]), None)


async def outbox_events(app, type_: str) -> list[dict]:
    async with app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [event for event in map(json.loads, payloads) if event["type"] == type_]


async def job_done(client, job_id: str) -> dict:
    async def probe():
        body = (await client.get(f"/v1/jobs/{job_id}")).json()
        return body if body["status"] in ("done", "failed") else None
    return await eventually(probe, timeout=20)


async def test_publish_governs_from_its_effective_date_recomputes_and_is_audited(benefits, databases, tmp_path):
    client = await benefits()
    async with transaction(client.app.state.sessionmaker) as session:
        await store_snapshot(session, farmer())
    before_2021, before_2020 = await evaluate(client, "2021-06-30"), await evaluate(client, "2020-06-30")
    assert before_2021["policy"]["pack"] == "cn-national"  # every local pack lapsed at the end of 2020
    assert before_2021["policy"]["coverage"] == "national_only"
    assert before_2021["policy"]["lapsed"]["pack"] == "nankang-2020"
    assert before_2020["policy"]["pack"] == "nankang-2020" and amount(before_2020, "industry.land_transfer_out") == "800.00"

    checked = (await client.post("/v1/policies:validate", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})).json()
    assert checked == {"valid": True, "pack": "nankang-2021", "version": "2021.1", "problems": []}
    diff = (await client.post("/v1/policies:diff", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})).json()
    assert diff["against"] == {"pack": "nankang-2020", "version": "2020.1", "relation": "parent"}
    assert diff["parameters"]["changed"] == [{
        "name": "land_transfer_out.rates", "old": {"farmland_mu": "400", "mountain_mu": "100"},
        "new": {"farmland_mu": "500", "mountain_mu": "100"}, "old_origin": "nankang-2020",
        "new_origin": "nankang-2021", "source": None, "default_not_in_seeds": True}]
    assert diff["parameters"]["added"] == diff["parameters"]["removed"] == []
    simulated = (await client.post("/v1/policies:simulate", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})).json()
    assert simulated["as_of"] == EFFECTIVE and simulated["households_evaluated"] == 1
    assert simulated["households_affected"] == 1
    land = next(p for p in simulated["programs"] if p["program"] == "industry.land_transfer_out")
    assert (land["households_gained"], land["amount_before"], land["amount_after"]) == (1, "0.00", "1000.00")

    published = await client.post("/v1/policies:publish", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})
    assert published.status_code == 201, published.text
    body = published.json()
    publication, job = body["publication"], body["job"]
    assert (publication["pack"], publication["version"], publication["effective_from"]) == ("nankang-2021", "2021.1", EFFECTIVE)
    assert publication["published_by"] == "office-admin" and publication["diff"] == diff
    assert published.headers["location"] == f"/v1/policies/publications/{publication['id']}"
    assert job["scope"] == {"kind": "region", "code": "360703"} and job["as_of"] == TODAY.isoformat()
    finished = await job_done(client, job["id"])
    assert (finished["status"], finished["processed"], finished["households_changed"]) == ("done", 1, 1)

    after_2021 = await evaluate(client, "2021-06-30")
    assert after_2021["policy"]["pack"] == "nankang-2021" and after_2021["policy"]["coverage"] == "local"
    assert after_2021["policy"]["chain"] == ["nankang-2021", "nankang-2020", "ganzhou-2016", "jiangxi-2018", "cn-national"]
    assert amount(after_2021, "industry.land_transfer_out") == "1000.00"  # 2 mu x the new 500
    assert amount(after_2021, "industry.machinery") == "4000.00"  # inherited, cited as before
    machinery = next(e for e in after_2021["entitlements"] if e["program"] == "industry.machinery")
    assert machinery["source"]["seed"] == "001"
    assert await evaluate(client, "2020-06-30") == before_2020  # before the effective date: unchanged
    stored = (await client.get("/v1/households/hh-farmer/entitlements")).json()
    assert next(e for e in stored["entitlements"] if e["program"] == "industry.land_transfer_out")["amount"] == "1000.00"

    [event] = await outbox_events(client.app, "policy.published")
    assert event["subject"] == "policy/nankang-2021" and event["actor"] == "office-admin"
    assert event["signature"] and event["data"]["publication_id"] == publication["id"]
    assert {k: event["data"][k] for k in ("pack", "version", "effective_from", "content_hash", "recompute_job_id")} == {
        "pack": "nankang-2021", "version": "2021.1", "effective_from": EFFECTIVE,
        "content_hash": publication["content_hash"], "recompute_job_id": job["id"]}
    assert event["data"]["diff"] == diff

    listed = (await client.get("/v1/policies/publications")).json()
    assert [item["id"] for item in listed["items"]] == [publication["id"]] and listed["next_cursor"] is None
    assert "text" not in listed["items"][0]
    one = (await client.get(f"/v1/policies/publications/{publication['id']}")).json()
    assert one["text"] == NANKANG_2021 and one["spec"]["extends"] == "nankang-2020"
    assert (await client.get("/v1/policies/publications", params={"colour": "red"})).status_code == 422
    assert (await client.get("/v1/policies/publications/999")).status_code == 404
    versions = next(p for p in (await client.get("/v1/policies")).json()["items"] if p["name"] == "nankang-2021")
    assert versions["versions"] == [{"version": "2021.1", "effective_from": EFFECTIVE, "publication_id": publication["id"]}]

    # Audit chains the event exactly as benefits signed it.
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), var_dir=tmp_path,
                                       kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False),
                         id_hash_key="k", checkpoint_schedule=False)
    async with running_app(audit, mint_token(AuditSettings(var_dir=tmp_path), "audit:read")) as auditor:
        async with transaction(audit.state.sessionmaker) as session:
            record = await ingest(session, Envelope.model_validate(event), "jz.benefits.v1:0", audit.state.settings)
        assert record is not None and record["type"] == "policy.published" and record["seq"] == 1
        ledger = (await auditor.get("/v1/audit/records", params={"chain_id": "jz.benefits.v1:0"})).json()
        assert [item["type"] for item in ledger["items"]] == ["policy.published"]


async def test_republish_is_idempotent_conflicts_are_409_and_bad_input_422(benefits):
    client = await benefits()
    first = await client.post("/v1/policies:publish", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})
    assert first.status_code == 201, first.text
    again = await client.post("/v1/policies:publish", json={"pack": "# same pack, other layout\n" + NANKANG_2021,
                                                            "effective_from": EFFECTIVE})
    assert again.status_code == 200 and again.json()["publication"] == first.json()["publication"]
    assert again.json()["job"]["id"] == first.json()["job"]["id"]

    other = NANKANG_2021.replace("farmland_mu: 500", "farmland_mu: 450")
    conflict = await client.post("/v1/policies:publish", json={"pack": other, "effective_from": EFFECTIVE},
                                 headers={"Accept-Language": "zh-CN"})
    assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
    assert "2021.1" in conflict.json()["detail"] and "已发布" in conflict.json()["detail"]
    moved = await client.post("/v1/policies:publish", json={"pack": NANKANG_2021, "effective_from": "2021-02-01"})
    assert moved.status_code == 409, moved.text
    shipped = await client.post("/v1/policies:publish", json={
        "pack": NANKANG_2021.replace("nankang-2021", "nankang-2020", 1).replace('"2021.1"', '"2020.1"'),
        "effective_from": EFFECTIVE})
    assert shipped.status_code == 409 and "file" in shipped.json()["detail"]

    broken = NANKANG_2021.replace("extends: nankang-2020", "extends: nankang-2019").replace(
        "    default_not_in_seeds: true\n", "")
    rejected = await client.post("/v1/policies:publish", json={"pack": broken, "effective_from": EFFECTIVE})
    assert rejected.status_code == 422
    problems = {(e["key"], e["line"]) for e in rejected.json()["errors"]}
    assert problems == {("parameters.land_transfer_out.rates", 11)}  # the schema first; the chain once it parses
    unknown_parent = NANKANG_2021.replace("nankang-2020", "nankang-2019").replace('"2021.1"', '"2021.2"')
    chain = await client.post("/v1/policies:publish", json={"pack": unknown_parent, "effective_from": "2022-01-01"})
    assert chain.status_code == 422 and [e["key"] for e in chain.json()["errors"]] == ["extends"]
    syntax = await client.post("/v1/policies:validate", json={"pack": "name: [broken\nversion: 1\n"})
    assert syntax.status_code == 200 and syntax.json()["valid"] is False
    assert syntax.json()["problems"][0]["line"] == 2 and "YAML" in syntax.json()["problems"][0]["message"]

    async with client.app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(policy_publications)) == 1
        assert await session.scalar(select(func.count()).select_from(recompute_jobs)) == 1
    assert len(await outbox_events(client.app, "policy.published")) == 1


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)  # a scope check: one backend is enough
async def test_publishing_needs_admin(benefits):
    client = await benefits(scopes="benefits:read benefits:evaluate")
    for path in ("/v1/policies:publish", "/v1/policies:validate", "/v1/policies:diff", "/v1/policies:simulate"):
        response = await client.post(path, json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    async with client.app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(policy_publications)) == 0


async def test_another_process_sees_a_publication_without_restart(benefits):
    publisher = await benefits()
    reader = await benefits(reload_s=0.05)
    assert (await evaluate(reader, "2021-06-30"))["policy"]["pack"] == "cn-national"
    published = await publisher.post("/v1/policies:publish", json={"pack": NANKANG_2021, "effective_from": EFFECTIVE})
    assert published.status_code == 201, published.text

    async def sees_it():
        return (await evaluate(reader, "2021-06-30"))["policy"]["pack"] == "nankang-2021"
    await eventually(sees_it, timeout=5)
    assert (await evaluate(reader, "2020-06-30"))["policy"]["pack"] == "nankang-2020"
