"""Object-level authorization, table-driven: every route with a path parameter, in the OpenAPI documents
of the three services, is called with an area-limited token of area A against an object of area B.

The answer must be 404 (the object is not confirmed to exist; docs/security.md, "Object-level
authorization") or, where the route needs a scope an area-limited office does not hold, 403; a write
must change nothing, which is checked by re-reading the object as admin before and after. A route with
a path parameter that is neither in ``CASES`` nor in ``EXEMPT`` fails ``test_every_route_with_a_path_
parameter_is_in_the_table``, so a new route cannot skip this check.
"""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.audit.app import create_app as create_audit
from services.audit.settings import AuditSettings
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import store_snapshot
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job
from services.registry.app import create_app as create_registry
from services.registry.imports.sample import generate_ledger
from shared.auth import mint_token
from shared.config import BenefitsSettings, RegistrySettings
from shared.db import transaction
from tests.helpers import example, household_body, running_app
from tests.integration.audit.support import feed, registry_event, snapshot

AREA_A = "360703102"            # the caller's township
AREA_B = "360703105"            # the objects' township (the example households live in 360703105201)
VILLAGE_A, VILLAGE_B = "360703102201", "360703105201"
AS_OF = dt.date(2020, 6, 30)

AREAS_CSV = f"""代码,名称,级别
36,江西省,省
3607,赣州市,市
360703,南康区,县
{AREA_A},龙岭镇,乡镇
{VILLAGE_A},龙岭村,村
{AREA_B},隆木乡,乡镇
{VILLAGE_B},新村村,村
"""


@dataclass
class Case:
    """One call with an area-A token against the area-B objects of ``world``.

    ``path`` params are ``{name}`` keys of the world; ``reread`` is an admin GET (same keys) whose
    answer must be the same before and after the call."""
    params: dict[str, str]
    scopes: str
    expect: int = 404
    json: Any = None
    content_type: str | None = None
    reread: str | None = None
    note: str = ""
    area: str = AREA_A
    missing_json: Any = None  # when the other area's id is in the body: the body naming a missing one


MERGE = "application/merge-patch+json"
W = "registry:read registry:write"

# (service, METHOD, OpenAPI path) -> the calls made against it
CASES: dict[tuple[str, str, str], list[Case]] = {
    # registry: households and everything under them
    ("registry", "GET", "/v1/households/{household_id}"): [Case({"household_id": "hh_b"}, "registry:read")],
    ("registry", "GET", "/v1/households/{household_id}/file"): [
        Case({"household_id": "hh_b"}, "registry:read benefits:read audit:read")],
    ("registry", "PATCH", "/v1/households/{household_id}"): [
        Case({"household_id": "hh_b"}, W, json={"address": "改"}, content_type=MERGE,
             reread="/v1/households/{hh_b}")],
    ("registry", "POST", "/v1/households/{household_id}/members"): [
        Case({"household_id": "hh_b"}, W, json={"name": "新成员", "sex": "F", "birth_date": "2015-03-01",
                                                "relation": "child"}, reread="/v1/households/{hh_b}")],
    ("registry", "PATCH", "/v1/households/{household_id}/members/{person_id}"): [
        Case({"household_id": "hh_b", "person_id": "person_b"}, W, json={"name": "改名"}, content_type=MERGE,
             reread="/v1/households/{hh_b}")],
    ("registry", "POST", "/v1/households/{household_id}/members/{person_id}/deceased"): [
        Case({"household_id": "hh_b", "person_id": "person_b"}, W, json={}, reread="/v1/households/{hh_b}")],
    ("registry", "POST", "/v1/households/{household_id}/members/{person_id}/move"): [
        Case({"household_id": "hh_b", "person_id": "person_b"}, W, json={"to_household_id": "{hh_a}"},
             reread="/v1/households/{hh_b}", note="into the caller's own household"),
        Case({"household_id": "hh_a", "person_id": "person_a"}, W, json={"to_household_id": "{hh_b}"},
             reread="/v1/households/{hh_a}", note="from the caller's own household into area B",
             missing_json={"to_household_id": "hh-missing"})],
    ("registry", "POST", "/v1/households/{household_id}/transitions"): [
        Case({"household_id": "hh_b"}, W, json={"action": "apply"}, reread="/v1/households/{hh_b}/procedure")],
    ("registry", "GET", "/v1/households/{household_id}/procedure"): [
        Case({"household_id": "hh_b"}, "registry:read")],
    ("registry", "GET", "/v1/households/{household_id}/visits"): [Case({"household_id": "hh_b"}, "registry:read")],
    # cadres and pairings
    ("registry", "GET", "/v1/cadres/{cadre_id}"): [Case({"cadre_id": "cadre_b"}, "registry:read")],
    ("registry", "PATCH", "/v1/cadres/{cadre_id}"): [
        Case({"cadre_id": "cadre_b"}, W, json={"name": "改名"}, content_type=MERGE, reread="/v1/cadres/{cadre_b}",
             note="rename another area's cadre"),
        Case({"cadre_id": "cadre_b"}, W, json={"area_code": AREA_A}, content_type=MERGE,
             reread="/v1/cadres/{cadre_b}", note="move another area's cadre into one's own"),
        Case({"cadre_id": "cadre_a"}, W, json={"area_code": AREA_B}, content_type=MERGE, expect=403,
             reread="/v1/cadres/{cadre_a}", note="move one's own cadre out of one's area"),
        Case({"cadre_id": "cadre_a"}, W, json={"area_code": None}, content_type=MERGE, expect=403,
             reread="/v1/cadres/{cadre_a}", note="clear one's own cadre's area")],
    ("registry", "POST", "/v1/households/{household_id}/pairings"): [
        Case({"household_id": "hh_b"}, W, json={"cadre_id": "{cadre_a}"}, reread="/v1/households/{hh_b}/pairings"),
        Case({"household_id": "hh_a"}, W, json={"cadre_id": "{cadre_b}"}, reread="/v1/households/{hh_a}/pairings",
             note="another area's cadre on one's own household", missing_json={"cadre_id": "cadre-missing"})],
    ("registry", "GET", "/v1/households/{household_id}/pairings"): [Case({"household_id": "hh_b"}, "registry:read")],
    ("registry", "DELETE", "/v1/households/{household_id}/pairings/{cadre_id}"): [
        Case({"household_id": "hh_b", "cadre_id": "cadre_b"}, W, reread="/v1/households/{hh_b}/pairings")],
    # areas and village teams
    ("registry", "GET", "/v1/areas/{code}"): [Case({"code": "village_b"}, "registry:read"),
                                               Case({"code": "township_b"}, "registry:read")],
    ("registry", "PATCH", "/v1/areas/{code}"): [
        Case({"code": "village_b"}, W, json={"name": "改名村"}, content_type=MERGE, reread="/v1/areas/{village_b}")],
    ("registry", "PUT", "/v1/areas/{code}"): [
        Case({"code": "village_b"}, W, json={"code": VILLAGE_B, "name": "改名村"}, expect=403,
             reread="/v1/areas/{village_b}", note="a write naming a place outside the area: 403 on the code alone")],
    ("registry", "PUT", "/v1/villages/{code}/team"): [
        Case({"code": "village_b"}, W, json={"first_secretary": "{cadre_a}"}, reread="/v1/areas/{village_b}"),
        Case({"code": "village_a"}, W, json={"first_secretary": "{cadre_b}"}, expect=422,
             reread="/v1/areas/{village_a}", note="another area's cadre is as unknown as a missing one")],
    # imports (helper "imports": the import row records the importing caller's area)
    # registry: monitoring leads and objects (their area is their household's)
    ("registry", "GET", "/v1/monitoring/leads/{lead_id}"): [Case({"lead_id": "lead_b"}, "registry:read")],
    ("registry", "POST", "/v1/monitoring/leads/{lead_id}/dismiss"): [
        Case({"lead_id": "lead_b"}, W, json={"reason": "no risk"}, reread="/v1/monitoring/leads/{lead_b}")],
    ("registry", "GET", "/v1/monitoring/objects/{object_id}"): [Case({"object_id": "object_b"}, "registry:read")],
    ("registry", "POST", "/v1/monitoring/objects/{object_id}/transitions"): [
        Case({"object_id": "object_b"}, W, json={"action": "risk_warning"}, reread="/v1/monitoring/objects/{object_b}")],
    ("registry", "POST", "/v1/monitoring/objects/{object_id}/measures"): [
        Case({"object_id": "object_b"}, W, json={"type": "medical", "responsible": "x", "start_date": "2021-04-01"},
             reread="/v1/monitoring/objects/{object_b}")],
    ("registry", "GET", "/v1/monitoring/objects/{object_id}/plan"): [Case({"object_id": "object_b"}, "registry:read")],
    ("registry", "PATCH", "/v1/monitoring/objects/{object_id}/measures/{measure_id}"): [
        Case({"object_id": "object_b", "measure_id": "measure_b"}, W, json={"status": "in_progress"},
             content_type=MERGE, reread="/v1/monitoring/objects/{object_b}")],
    ("registry", "GET", "/v1/imports/{import_id}"): [
        Case({"import_id": "import_b"}, "registry:read", note="an import by an office of area B"),
        Case({"import_id": "import_unlimited"}, "registry:read", note="an import by a caller with no area")],
    # benefits
    ("benefits", "GET", "/v1/households/{household_id}/entitlements"): [
        Case({"household_id": "hh_b"}, "benefits:read")],
    ("benefits", "GET", "/v1/households/{household_id}/entitlements/history"): [
        Case({"household_id": "hh_b"}, "benefits:read")],
    ("benefits", "GET", "/v1/households/{household_id}/monitoring/elimination"): [
        Case({"household_id": "hh_b"}, "benefits:read")],
    ("benefits", "GET", "/v1/jobs/{job_id}"): [
        Case({"job_id": "job_b"}, "benefits:read", note="a job over area B"),
        Case({"job_id": "job_all"}, "benefits:read", note="a job over every area")],
    ("benefits", "POST", "/v1/jobs/{job_id}/resume"): [
        Case({"job_id": "job_b"}, "benefits:read benefits:evaluate", expect=403, reread="/v1/jobs/{job_b}",
             note="admin only; admin is never area-limited")],
    ("benefits", "POST", "/v1/partners/clients/{client_id}:rotate"): [
        Case({"client_id": "client"}, "benefits:read", expect=403, json={}, reread="/v1/partners/clients",
             note="admin only")],
    ("benefits", "POST", "/v1/partners/clients/{client_id}:disable"): [
        Case({"client_id": "client"}, "benefits:read", expect=403, reread="/v1/partners/clients",
             note="admin only")],
    ("benefits", "GET", "/v1/villages/{code}/assessments"): [
        Case({"code": "village_b"}, "benefits:read", note="a village of area B (stored with its household)")],
    # audit
    ("audit", "GET", "/v1/audit/households/{household_id}/history"): [
        Case({"household_id": "hh_b"}, "audit:read")],
}

EXEMPT: dict[tuple[str, str, str], str] = {
    ("benefits", "GET", "/v1/policies/{pack}"):
        "a policy pack is published regional rules (no person, no area-bound record); every reader may see it",
    ("benefits", "GET", "/v1/policies/publications/{publication_id}"):
        "a publication is a pack's text, who published it and when (rules, not area-bound records)",
    # admin only (admin is never area-limited): any other caller gets 403 before a look-up
    # (tests/integration/test_dead_letters.py checks it)
    **{(service, method, path): "a dead letter (admin only, never area-limited)"
       for service in ("benefits", "audit")
       for method, path in (("GET", "/v1/admin/dead-letters/{dead_letter_id}"),
                            ("POST", "/v1/admin/dead-letters/{dead_letter_id}:redrive"))},
    # DCI administration, admin only (tests/integration/registry/dci/test_dci_api.py checks the 403s)
    **{("registry", method, path): "DCI administration (admin only, never area-limited)"
       for method, path in (("GET", "/v1/admin/dci/senders/{sender_id}"), ("PATCH", "/v1/admin/dci/senders/{sender_id}"),
                            ("POST", "/v1/admin/dci/deliveries/{delivery_id}/redrive"))},
}


def route_keys(service: str, app) -> set[tuple[str, str, str]]:
    return {(service, method.upper(), path) for path, operations in app.openapi()["paths"].items() if "{" in path
            for method in operations if method in ("get", "put", "post", "patch", "delete")}


def build_apps(tmp_path, urls: dict[str, str]) -> dict[str, Any]:
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False)
    registry = create_registry(RegistrySettings(database_url=urls["registry"], **common),
                               benefits_transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    benefits = create_benefits(BenefitsSettings(database_url=urls["benefits"], run_consumer=False, **common))
    audit = create_audit(AuditSettings(database_url=urls["audit"], run_consumer=False, **common),
                         id_hash_key="test-key", checkpoint_schedule=False)
    return {"registry": registry, "benefits": benefits, "audit": audit}


@pytest.mark.parametrize("service", ["registry", "benefits", "audit"])
def test_every_route_with_a_path_parameter_is_in_the_table(service, tmp_path):
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("registry", "benefits", "audit")}
    routes = route_keys(service, build_apps(tmp_path, urls)[service])
    listed = {key for key in [*CASES, *EXEMPT] if key[0] == service}
    assert routes - listed == set(), "routes with a path parameter missing from CASES/EXEMPT"
    assert listed - routes == set(), "CASES/EXEMPT name routes that no longer exist"
    assert all(CASES[key] for key in CASES if key[0] == service)


# ---------------------------------------------------------------- the world: objects of area B (and A)

async def registry_world(client, admin: dict, settings) -> dict[str, str]:
    loaded = await client.post("/v1/areas:bulk", files={"file": ("areas.csv", AREAS_CSV.encode(), "text/csv")},
                               headers=admin)
    assert loaded.status_code == 200, loaded.text
    hh_b = (await client.post("/v1/households", json=household_body(), headers=admin)).json()
    body_a = household_body("nankang-dibao-elderly")  # other persons: an id number lives in one household
    body_a["village"] = {**body_a["village"], "code": VILLAGE_A, "township_code": AREA_A}
    hh_a = (await client.post("/v1/households", json=body_a, headers=admin)).json()
    assert hh_b["village"]["code"].startswith(AREA_B) and hh_a["village"]["code"].startswith(AREA_A)
    for cadre_id, area in (("cadre-b", AREA_B), ("cadre-a", AREA_A)):
        created = await client.post("/v1/cadres", json={"id": cadre_id, "name": "干部", "unit": "南康区财政局",
                                                        "phone": "13800000000", "area_code": area}, headers=admin)
        assert created.status_code == 201, created.text
    paired = await client.post(f"/v1/households/{hh_b['id']}/pairings", json={"cadre_id": "cadre-b"}, headers=admin)
    assert paired.status_code == 201, paired.text
    team = await client.put(f"/v1/villages/{VILLAGE_B}/team", json={"first_secretary": "cadre-b"}, headers=admin)
    assert team.status_code == 200, team.text
    world = {"hh_b": hh_b["id"], "hh_a": hh_a["id"], "person_b": hh_b["members"][0]["id"],
             "person_a": hh_a["members"][0]["id"], "cadre_b": "cadre-b", "cadre_a": "cadre-a",
             "village_b": VILLAGE_B, "village_a": VILLAGE_A, "township_b": AREA_B}
    lead_b = await client.post("/v1/monitoring/leads", headers=admin, json={
        "client_lead_id": "0b7c4c1e-3a43-4f0e-9a55-0c1d2e3f4a5b", "household_id": hh_b["id"], "channel": "department",
        "risk_causes": ["illness"], "reported_at": "2021-03-01T09:00:00+08:00"})
    assert lead_b.status_code == 201, lead_b.text
    object_b = await client.post("/v1/monitoring/objects", headers=admin,
                                 json={"lead_id": lead_b.json()["id"], "category": "sudden_hardship"})
    assert object_b.status_code == 201, object_b.text
    measure_b = await client.post(f"/v1/monitoring/objects/{object_b.json()['id']}/measures", headers=admin,
                                  json={"type": "medical", "responsible": "区医保局", "start_date": "2021-04-01"})
    assert measure_b.status_code == 201, measure_b.text
    world.update(lead_b=lead_b.json()["id"], object_b=object_b.json()["id"], measure_b=measure_b.json()["measure"]["id"])
    office_b = {"Authorization": f"Bearer {mint_token(settings, W, area=AREA_B, subject='office-b')}"}
    world["import_b"] = await an_import(client, office_b, household=0)
    world["import_unlimited"] = await an_import(client, {"Authorization": f"Bearer {mint_token(settings, W)}"},
                                                household=1)
    return world


async def an_import(client, headers: dict, *, household: int) -> str:
    """An import of one household of the sample ledger: the ``household``-th of those in area B."""
    header, rows = generate_ledger(30, seed=5)
    column = {title: index for index, title in enumerate(header)}
    in_area_b = list(dict.fromkeys(row[column["户编号"]] for row in rows
                                   if row[column["行政村代码"]].startswith(AREA_B)))
    rows = [row for row in rows if row[column["户编号"]] == in_area_b[household]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    response = await client.post("/v1/imports", files={"file": ("l.csv", buffer.getvalue().encode(), "text/csv")},
                                 headers=headers)
    assert response.status_code in (200, 201, 202), response.text[:500]
    answer = response.json()
    import_id = answer.get("import_id") or answer.get("id") or response.headers["location"].rsplit("/", 1)[1]
    assert (await client.get(f"/v1/imports/{import_id}", headers=headers)).status_code == 200
    return import_id


async def benefits_world(client, app, admin: dict) -> dict[str, str]:
    household = copy.deepcopy(example("nankang-farmer")["household"])
    assert household["village"]["code"].startswith(AREA_B)
    async with transaction(app.state.sessionmaker) as session:
        await store_snapshot(session, household)
        job_b = await create_job(session, Scope(kind="region", code=AREA_B), AS_OF)
        job_all = await create_job(session, Scope(kind="all"), AS_OF)
    created = await client.post("/v1/partners/clients", json={"name": "南康农商银行", "scopes": ["credit"]},
                                headers=admin)
    assert created.status_code == 201, created.text
    village = await client.get(f"/v1/villages/{VILLAGE_B}/assessments", headers=admin)
    assert village.status_code == 200, village.text  # it exists: a 404 below is the area check, not a miss
    return {"hh_b": household["id"], "job_b": job_b["id"], "job_all": job_all["id"],
            "client": created.json()["client_id"], "village_b": VILLAGE_B}


async def audit_world(app) -> dict[str, str]:
    # the audit support's village "A" is 360703105201, in this file's area B
    await feed(app, registry_event("household.registered", snapshot("hh-audit-b", village="A")))
    return {"hh_b": "hh-audit-b"}


# ---------------------------------------------------------------- running the table

def fill(template: Any, world: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**world) if "{" in template else template
    if isinstance(template, dict):
        return {k: fill(v, world) for k, v in template.items()}
    return template


def missing_url(path: str, case: Case, world: dict[str, str]) -> str:
    """``path`` with its first parameter replaced by an id (or code inside the caller's area) that
    does not exist."""
    values = {param: world[key] for param, key in case.params.items()}
    first = next(iter(values))
    value = values[first]
    values[first] = (case.area + "9" * max(3, len(value) - len(case.area))) if value.isdigit() else f"{value}-missing"
    return path.format(**values)


async def run_cases(service: str, client, settings, world: dict[str, str], admin: dict) -> list[str]:
    tried = []
    for (name, method, path), cases in CASES.items():
        if name != service:
            continue
        for case in cases:
            url = path.format(**{param: world[key] for param, key in case.params.items()})
            before = (await client.get(fill(case.reread, world), headers=admin)) if case.reread else None
            if before is not None:
                assert before.status_code == 200, (case.reread, before.text)
            headers = {"Authorization": f"Bearer {mint_token(settings, case.scopes, area=case.area)}"}
            kwargs: dict[str, Any] = {}
            if case.json is not None:
                kwargs["content"] = httpx.Request("POST", "http://x", json=fill(case.json, world)).content
                headers["Content-Type"] = case.content_type or "application/json"
            response = await client.request(method, url, headers=headers, **kwargs)
            label = f"{method} {url} ({case.note or case.scopes})"
            assert response.status_code == case.expect, f"{label}: {response.status_code} {response.text[:300]}"
            assert response.headers["content-type"].startswith("application/problem+json"), label
            if before is not None:
                after = await client.get(fill(case.reread, world), headers=admin)
                assert after.json() == before.json(), f"{label} changed {case.reread}"
            if case.expect == 404:
                # the same call on an id that does not exist: the same answer, so nothing is confirmed
                if case.missing_json is not None:
                    missing = await client.request(method, url, headers=headers, json=case.missing_json)
                else:
                    missing = await client.request(method, missing_url(path, case, world), headers=headers,
                                                   **kwargs)
                assert (missing.status_code, missing.json().get("title")) == (404, response.json()["title"]), \
                    f"{label}: {missing.status_code} {missing.text[:300]}"
            tried.append(f"{response.status_code} {label}")
    return tried


async def test_objects_of_another_area_are_not_found_and_unchanged(databases, tmp_path):
    urls = {name: await databases.url(name) for name in ("registry", "benefits", "audit")}
    apps = build_apps(tmp_path, urls)
    settings = apps["registry"].state.settings
    admin = {"Authorization": f"Bearer {mint_token(settings, 'admin', subject='admin-1')}"}
    tried = []
    async with running_app(apps["registry"]) as client:
        world = await registry_world(client, admin, settings)
        tried += await run_cases("registry", client, settings, world, admin)
        # control: the same token inside its own area is let through, so the table is not vacuous
        own = {"Authorization": f"Bearer {mint_token(settings, W, area=AREA_A)}"}
        assert (await client.get(f"/v1/households/{world['hh_a']}", headers=own)).status_code == 200
        assert (await client.get("/v1/cadres/cadre-a", headers=own)).status_code == 200
        assert (await client.get(f"/v1/areas/{VILLAGE_A}", headers=own)).status_code == 200
        listed = (await client.get("/v1/cadres", headers=own)).json()["items"]
        assert [c["id"] for c in listed] == ["cadre-a"]
        created = await client.post("/v1/cadres", json={"id": "cadre-new", "name": "新干部", "unit": "龙岭镇"},
                                    headers=own)
        assert created.status_code == 201 and created.json()["area_code"] == AREA_A
    async with running_app(apps["benefits"]) as client:
        world = await benefits_world(client, apps["benefits"], admin)
        tried += await run_cases("benefits", client, settings, world, admin)
        own = {"Authorization": f"Bearer {mint_token(settings, 'benefits:read', area=AREA_B)}"}
        assert (await client.get(f"/v1/jobs/{world['job_b']}", headers=own)).status_code == 200
        assert (await client.get(f"/v1/households/{world['hh_b']}/entitlements", headers=own)).status_code == 200
    async with running_app(apps["audit"]) as client:
        world = await audit_world(apps["audit"])
        tried += await run_cases("audit", client, settings, world, admin)
        own = {"Authorization": f"Bearer {mint_token(settings, 'audit:read', area=AREA_B)}"}
        assert (await client.get(f"/v1/audit/households/{world['hh_b']}/history", headers=own)).status_code == 200
    print(f"\nobject-level authorization: {len(tried)} calls on {len(CASES)} routes "
          f"({len(EXEMPT)} exempt)\n" + "\n".join(tried))
    assert len(tried) == sum(len(cases) for cases in CASES.values())


async def test_ids_and_areas_in_queries_and_bodies_stay_inside_the_callers_area(databases, tmp_path):
    """Ids that arrive in a body or a query (visits, exports, ledger records, samples, partner access,
    simulations, entitlement lists): 404 for another area's object, 403 for a filter naming a wider or
    other area (decided on the code alone), an empty answer for a list."""
    urls = {name: await databases.url(name) for name in ("registry", "benefits", "audit")}
    apps = build_apps(tmp_path, urls)
    settings = apps["registry"].state.settings
    admin = {"Authorization": f"Bearer {mint_token(settings, 'admin', subject='admin-1')}"}

    def token(scopes: str, **kw) -> dict:
        return {"Authorization": f"Bearer {mint_token(settings, scopes, area=AREA_A, **kw)}"}

    async with running_app(apps["registry"]) as client:
        world = await registry_world(client, admin, settings)
        visit = await client.post("/v1/visits", headers=token("visits:write", subject="cadre-a"), json={
            "client_visit_id": "5b0f6c1e-8d7f-4c53-9d0e-2f5b8f6a9c11", "household_id": world["hh_b"],
            "visited_at": "2020-06-28T10:30:00+08:00", "location": {"lat": 25.66, "lon": 114.76}})
        assert visit.status_code == 404, visit.text
        assert (await client.get(f"/v1/households/{world['hh_b']}/visits", headers=admin)).json()["items"] == []
        export = await client.get("/v1/exports/households", params={"village_code": VILLAGE_B},
                                  headers=token("registry:read"))
        assert export.status_code == 200 and len(export.text.strip().splitlines()) == 1  # the header only
        everything = await client.get("/v1/exports/households", headers=token("registry:read"))
        assert world["hh_b"] not in everything.text and world["hh_a"] in everything.text
        listed = await client.get("/v1/households", params={"village_code": VILLAGE_B}, headers=token("registry:read"))
        assert listed.json()["items"] == []
    async with running_app(apps["benefits"]) as client:
        await benefits_world(client, apps["benefits"], admin)
        simulate = await client.post("/v1/simulate", headers=token("benefits:evaluate"),
                                     json={"pack": "nankang-2020", "scope": {"kind": "region", "code": AREA_B},
                                           "overrides": {"crop_livestock.household_cap": "5000"}})
        assert simulate.status_code == 403, simulate.text
        other = await client.get("/v1/entitlements", params={"area": AREA_B}, headers=token("benefits:read"))
        assert other.status_code == 403
    async with running_app(apps["audit"]) as client:
        world = await audit_world(apps["audit"])
        records = await client.get("/v1/audit/records", params={"subject": f"household/{world['hh_b']}"},
                                   headers=token("audit:read"))
        assert records.status_code == 404, records.text
        unknown = await client.get("/v1/audit/records", params={"subject": "household/hh-nobody"},
                                   headers=token("audit:read"))
        assert unknown.status_code == 404 and unknown.json()["title"] == records.json()["title"]
        sample = await client.get("/v1/supervision/sample", params={"year": 2020, "area": AREA_B},
                                  headers=token("audit:read"))
        assert sample.status_code == 403
        access = await client.get("/v1/supervision/partner-access", params={"household_id": world["hh_b"]},
                                  headers=token("audit:read"))
        assert access.status_code == 200 and access.json()["items"] == []


@pytest.mark.parametrize(("scope", "area", "scopes", "visible"), [
    ({"kind": "region", "code": AREA_B}, AREA_B, "benefits:read", True),
    ({"kind": "village", "code": VILLAGE_B}, AREA_B, "benefits:read", True),
    ({"kind": "region", "code": "360703"}, AREA_B, "benefits:read", False),   # wider than the caller's area
    ({"kind": "region", "code": AREA_B}, AREA_A, "benefits:read", False),
    ({"kind": "all"}, AREA_B, "benefits:read", False),
    ({"kind": "all"}, None, "benefits:read", True),
    ({"kind": "region", "code": AREA_B}, AREA_A, "admin", True),              # admin is never area-limited
])
def test_a_job_belongs_to_the_area_of_its_scope(scope, area, scopes, visible):
    from services.benefits.recompute.views import visible_job
    from shared.auth import Principal
    from shared.problems import Problem
    principal = Principal(subject="s", scopes=frozenset(scopes.split()), area=area)
    job = {"id": "j", "scope": scope}
    if visible:
        assert visible_job(job, "j", principal) is job
    else:
        with pytest.raises(Problem) as refused:
            visible_job(job, "j", principal)
        assert refused.value.status == 404
