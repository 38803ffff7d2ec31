"""Idempotency-Key on every creating POST of registry and benefits, on SQLite and PostgreSQL.

A phone or a bank that got no answer sends the same request with the same key: it must get the
first answer again (same status, same body) and nothing may be written twice.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from typing import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select

from services.benefits import app as benefits_app
from services.benefits.partners.tables import credit_decisions, credit_loan_events, settlements
from services.benefits.tables import idempotency_keys as benefits_keys
from services.benefits.tables import outbox as benefits_outbox
from services.benefits.tables import recompute_jobs
from services.registry import app as registry_app
from services.registry.app import create_app
from services.registry.imports.sample import generate_ledger
from services.registry.tables import areas, cadres, household_versions, households, imports, outbox, pairings
from services.registry.tables import idempotency_keys as registry_keys
from services.registry.tables import visits
from shared import idempotency
from shared.auth import mint_token
from shared.config import RegistrySettings
from shared.idcard import make_id_number
from tests.helpers import household_body, running_app
from tests.integration.partners.conftest import FARMER_ID, base_households, make_partners, settings_for
from tests.integration.registry.conftest import BenefitsStub, Clock
from tests.integration.registry.test_areas import AREAS_CSV
from tests.integration.registry.test_ledger_import import to_csv

NEWBORN = {"name": "钟小芳", "id_number": make_id_number("360782", date(2020, 2, 2), 2), "sex": "F",
           "birth_date": "2020-02-02", "relation": "child"}


def _settings(url: str, tmp_path, **extra) -> RegistrySettings:
    return RegistrySettings(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                            **extra)


@pytest.fixture
async def registry(databases, tmp_path):
    url = await databases.url("registry")
    settings = _settings(url, tmp_path)
    app = create_app(settings, benefits_transport=httpx.MockTransport(BenefitsStub().handler))
    clock = Clock()
    async with running_app(app, mint_token(settings, "admin", subject="office-1")) as client:
        app.state.clock = clock
        client.app, client.settings, client.clock, client.url = app, settings, clock, url
        yield client


@pytest.fixture
async def benefits(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, base_households()):
        yield partners


async def count(app, table) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def counts(app, *tables) -> tuple[int, ...]:
    return tuple([await count(app, table) for table in tables])


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Case:
    """A creating POST: how to set it up, the request, another request, and what it creates."""
    path: str
    first: Callable[[dict], dict]   # context → request kwargs
    other: Callable[[dict], dict]
    created: tuple                  # tables that the first request adds a row to
    setup: Callable[[httpx.AsyncClient], Awaitable[dict]] | None = None


async def _household(client) -> dict:
    created = await client.post("/v1/households", json=household_body())
    assert created.status_code == 201, created.text
    return {"hid": created.json()["id"], "pid": created.json()["members"][0]["id"]}


async def _two_households(client) -> dict:
    context = await _household(client)
    second = await client.post("/v1/households", json=household_body("nankang-dibao-elderly"))
    return {**context, "second": second.json()["id"]}


async def _cadre(client) -> dict:
    context = await _household(client)
    for cadre_id in ("cadre-zhong", "cadre-li"):
        created = await client.post("/v1/cadres", json={"id": cadre_id, "name": "钟干部", "unit": "南康区财政局"})
        assert created.status_code == 201, created.text
    paired = await client.post(f"/v1/households/{context['hid']}/pairings", json={"cadre_id": "cadre-zhong"})
    assert paired.status_code == 201, paired.text
    return context


def _visit(context: dict, days: int, **fields) -> dict:
    when = context.setdefault(f"at-{days}", (Clock().now - timedelta(days=days)).isoformat())
    return {"client_visit_id": context.setdefault(f"cvid-{days}", str(uuid.uuid4())), "household_id": context["hid"],
            "visited_at": when, **fields}


def _ledger(seed: int) -> bytes:
    header, rows = generate_ledger(8, seed=seed)
    return to_csv(header, rows)


REGISTRY_CASES = {
    "households": Case("/v1/households", lambda c: {"json": household_body()},
                       lambda c: {"json": household_body("nankang-dibao-elderly")}, (households, outbox)),
    "members": Case("/v1/households/{hid}/members", lambda c: {"json": NEWBORN},
                    lambda c: {"json": {**NEWBORN, "name": "钟小红"}}, (household_versions, outbox), _household),
    "transitions": Case("/v1/households/{hid}/transitions", lambda c: {"json": {"action": "apply"}},
                        lambda c: {"json": {"action": "register"}}, (household_versions, outbox), _household),
    "deceased": Case("/v1/households/{hid}/members/{pid}/deceased", lambda c: {"json": {"date_of_death": "2020-03-01"}},
                     lambda c: {"json": {"date_of_death": "2020-03-02"}}, (household_versions, outbox), _household),
    "move": Case("/v1/households/{hid}/members/{pid}/move",
                 lambda c: {"json": {"to_household_id": c["second"], "relation": "other", "reason": "婚嫁"}},
                 lambda c: {"json": {"to_household_id": c["second"], "relation": "other", "reason": "投靠"}},
                 (household_versions,), _two_households),
    "cadres": Case("/v1/cadres", lambda c: {"json": {"id": "cadre-wang", "name": "王干部", "unit": "区教育局"}},
                   lambda c: {"json": {"id": "cadre-wang", "name": "王干部", "unit": "区卫健委"}}, (cadres,)),
    "pairings": Case("/v1/households/{hid}/pairings", lambda c: {"json": {"cadre_id": "cadre-li"}},
                     lambda c: {"json": {"cadre_id": "cadre-zhong"}}, (pairings, outbox), _cadre),
    "imports": Case("/v1/imports", lambda c: {"files": {"file": ("ledger.csv", _ledger(21), "text/csv")}},
                    lambda c: {"files": {"file": ("ledger.csv", _ledger(22), "text/csv")}}, (imports, households)),
    "areas": Case("/v1/areas:bulk", lambda c: {"files": {"file": ("areas.csv", AREAS_CSV.encode(), "text/csv")}},
                  lambda c: {"files": {"file": ("areas.csv", AREAS_CSV.replace("52000", "53000").encode(),
                                                "text/csv")}}, (areas,)),
    "visits": Case("/v1/visits", lambda c: {"json": _visit(c, 1, notes="first")},
                   lambda c: {"json": _visit(c, 2, notes="second")}, (visits, outbox), _cadre),
    "visit batches": Case("/v1/visits:batch", lambda c: {"json": {"visits": [_visit(c, 1), _visit(c, 3)]}},
                          lambda c: {"json": {"visits": [_visit(c, 2)]}}, (visits, outbox), _cadre),
}


async def _same_key_same_request_is_the_first_answer(client, app, case: Case, outbox_table, keys_table):
    context = await case.setup(client) if case.setup else {}
    path = case.path.format(**context)
    headers = key()
    before = await counts(app, *case.created, outbox_table)

    first = await client.post(path, headers=headers, **case.first(context))
    assert 200 <= first.status_code < 300, first.text
    after_first = await counts(app, *case.created, outbox_table)
    assert after_first[0] > before[0], "the first request created something"

    again = await client.post(path, headers=headers, **case.first(context))
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    for name in ("etag", "location"):
        assert again.headers.get(name) == first.headers.get(name)
    assert await counts(app, *case.created, outbox_table) == after_first

    other = await client.post(path, headers=headers, **case.other(context))
    assert other.status_code == 422 and other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["idempotency_key"] == headers["Idempotency-Key"]
    assert headers["Idempotency-Key"] in problem["detail"] and "new key" in problem["detail"]
    assert problem["first_request"]["route"] == f"POST {path}"
    assert await counts(app, *case.created, outbox_table) == after_first
    assert await count(app, keys_table) == 1


@pytest.mark.parametrize("name", list(REGISTRY_CASES))
async def test_registry_create_with_the_same_key_answers_the_first_response(registry, name):
    await _same_key_same_request_is_the_first_answer(registry, registry.app, REGISTRY_CASES[name], outbox,
                                                     registry_keys)


def _loan(report: str, amount: str = "36000") -> dict:
    return {"json": {"report_id": report, "loan_id": "L-1", "event": "issuance", "date": "2019-11-15",
                     "id_number": FARMER_ID, "amount": amount, "due_date": "2021-11-15", "purpose": "livestock"}}


async def _issued(bank) -> dict:
    issued = await bank.post("/v1/credit/loans", **_loan("r-setup"))
    assert issued.status_code == 200, issued.text
    return {}


BILL = {"id_number": FARMER_ID, "admission_date": "2020-05-01", "discharge_date": "2020-05-10", "hospital_level": 2,
        "in_district": True, "total_cost": "20000.00", "in_policy_cost": "18000.00"}

BENEFITS_CASES = {
    "loans": ("bank", Case("/v1/credit/loans", lambda c: _loan("r-1"), lambda c: _loan("r-1", "30000"),
                           (credit_loan_events,))),
    "interest claims": ("bank", Case(
        "/v1/credit/interest-claims",
        lambda c: {"json": {"claim_id": "C-1", "year": 2019, "quarter": 4,
                            "lines": [{"loan_id": "L-1", "claimed_amount": "223.25"}]}},
        lambda c: {"json": {"claim_id": "C-1", "year": 2019, "quarter": 4,
                            "lines": [{"loan_id": "L-1", "claimed_amount": "100.00"}]}},
        (benefits_outbox,), lambda bank: _issued(bank))),
    "settlements": ("insurer", Case("/v1/settlements/one-stop", lambda c: {"json": {**BILL, "claim_id": "INS-1"}},
                                    lambda c: {"json": {**BILL, "claim_id": "INS-1", "total_cost": "21000.00"}},
                                    (settlements,))),
    "eligibility": ("bank", Case("/v1/credit/eligibility",
                                 lambda c: {"json": {"id_number": FARMER_ID, "amount": "50000", "term_months": 36,
                                                     "purpose": "livestock"}},
                                 lambda c: {"json": {"id_number": FARMER_ID, "amount": "40000", "term_months": 36,
                                                     "purpose": "livestock"}},
                                 (credit_decisions,))),
    "recompute": ("admin", Case("/v1/recompute",
                                lambda c: {"json": {"scope": {"kind": "region", "code": "360703"}, "as_of": "2020-06-30"}},
                                lambda c: {"json": {"scope": {"kind": "region", "code": "360703"}, "as_of": "2020-07-01"}},
                                (recompute_jobs,))),
}


@pytest.mark.parametrize("name", list(BENEFITS_CASES))
async def test_benefits_create_with_the_same_key_answers_the_first_response(benefits, name):
    caller, case = BENEFITS_CASES[name]
    client = getattr(benefits, caller)
    await _same_key_same_request_is_the_first_answer(client, benefits.app, case, benefits_outbox, benefits_keys)


async def test_without_a_key_a_retried_create_makes_a_second_household(registry):
    """The defect the key exists for; the old behaviour without the header is unchanged."""
    body = household_body()
    for member in body["members"]:
        member.pop("id_number")  # so that the same household may be registered twice
    for _ in range(2):
        assert (await registry.post("/v1/households", json=body)).status_code == 201
    assert await count(registry.app, households) == 2 and await count(registry.app, registry_keys) == 0


async def test_a_retried_create_with_a_key_makes_one_household(registry):
    headers = key()
    answers = [await registry.post("/v1/households", json=household_body(), headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await counts(registry.app, households, outbox) == (1, 1)


async def test_another_caller_with_the_same_key_is_independent(registry):
    headers = key()
    mine = await registry.post("/v1/households", json=household_body(), headers=headers)
    other_office = {**headers, "Authorization": f"Bearer {mint_token(registry.settings, 'admin', subject='office-2')}"}
    theirs = await registry.post("/v1/households", json=household_body("nankang-dibao-elderly"), headers=other_office)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers
    replay = await registry.post("/v1/households", json=household_body(), headers=headers)
    assert replay.json()["id"] == mine.json()["id"]
    assert await count(registry.app, households) == 2 and await count(registry.app, registry_keys) == 2


async def test_the_key_survives_a_restart(databases, tmp_path):
    url = await databases.url("registry")
    settings = _settings(url, tmp_path)
    token = mint_token(settings, "registry:read registry:write", subject="office-1")
    headers = key()
    async with running_app(create_app(settings), token) as client:
        first = await client.post("/v1/households", json=household_body(), headers=headers)
        assert first.status_code == 201, first.text
    restarted = create_app(settings)
    async with running_app(restarted, token) as client:
        again = await client.post("/v1/households", json=household_body(), headers=headers)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["idempotent-replayed"] == "true"
        assert await count(restarted, households) == 1


async def test_keys_expire_after_the_ttl_setting_and_are_purged(databases, tmp_path, monkeypatch):
    monkeypatch.setattr(idempotency, "PURGE_EVERY_S", 0.0)  # sweep on every request instead of every 5 min
    settings = _settings(await databases.url("registry"), tmp_path, idempotency_ttl_hours=2)
    app = create_app(settings)
    clock = Clock()
    async with running_app(app, mint_token(settings, "registry:write", subject="office-1")) as client:
        app.state.clock = clock
        headers = key()
        first = await client.post("/v1/households", json=household_body(), headers=headers)
        clock.advance(hours=1, minutes=59)
        within = await client.post("/v1/households", json=household_body(), headers=headers)
        assert within.json() == first.json() and within.headers["idempotent-replayed"] == "true"
        async with app.state.sessionmaker() as session:
            row = (await session.execute(select(registry_keys))).one()
        assert row.status_code == 201 and row.route == "POST /v1/households"
        assert (row.expires_at.replace(tzinfo=timezone.utc) if row.expires_at.tzinfo is None else row.expires_at) - \
            (row.created_at.replace(tzinfo=timezone.utc) if row.created_at.tzinfo is None else row.created_at) == \
            timedelta(hours=2)

        clock.advance(minutes=2)  # 2 h 1 min: the key is forgotten; the same key is a new request
        after = await client.post("/v1/households", json=household_body("nankang-dibao-elderly"), headers=headers)
        assert after.status_code == 201 and "idempotent-replayed" not in after.headers
        assert await count(app, households) == 2

        # another expired key is purged by the periodic sweep, not only when it is reused
        stale = key()
        await client.post("/v1/households", json={**household_body(), "members": []}, headers=stale)
        clock.advance(hours=3)
        await client.post("/v1/households", json={"bad": True}, headers=key())
        async with app.state.sessionmaker() as session:
            remaining = (await session.execute(select(registry_keys.c.key))).scalars().all()
        assert stale["Idempotency-Key"] not in remaining and headers["Idempotency-Key"] not in remaining


async def test_the_default_ttl_is_24_hours():
    assert RegistrySettings().idempotency_ttl_hours == 24


async def test_a_request_still_in_flight_is_409_then_outcome_unknown(registry):
    """The reservation is committed before the handler runs: a twin request meanwhile runs nothing."""
    headers, body = key(), household_body()
    store = idempotency.IdempotencyStore(registry.app.state.sessionmaker, timedelta(hours=24))
    fingerprint = idempotency.request_fingerprint("POST", "/v1/households", b"",
                                                  httpx.Request("POST", "http://x", json=body).content)
    now = registry.clock.now.astimezone(timezone.utc)
    assert await store.reserve("sub:office-1", headers["Idempotency-Key"], "POST /v1/households", fingerprint, now) is None

    running = await registry.post("/v1/households", json=body, headers=headers)
    assert running.status_code == 409 and running.headers["retry-after"] == "1"
    assert running.json()["type"].endswith("/idempotency-key-in-flight")
    assert running.json()["idempotency_key"] == headers["Idempotency-Key"]
    # a different body with the same key is still "another request", not "in flight"
    assert (await registry.post("/v1/households", json={**body, "notes": "x"}, headers=headers)).status_code == 422

    registry.clock.advance(minutes=11)  # the first attempt never answered: its process died mid-request
    lost = await registry.post("/v1/households", json=body, headers=headers)
    assert lost.status_code == 409 and lost.json()["type"].endswith("/idempotency-outcome-unknown")
    assert "may or may not have taken effect" in lost.json()["detail"]
    assert await count(registry.app, households) == 0


async def test_a_crash_between_the_commit_and_storing_the_answer_never_creates_twice(registry, monkeypatch):
    async def died(*_args, **_kwargs):
        raise ConnectionError("the process was killed here")

    monkeypatch.setattr(idempotency.IdempotencyStore, "fill", died)
    headers = key()
    first = await registry.post("/v1/households", json=household_body(), headers=headers)
    assert first.status_code == 201  # the household was committed; its answer could not be kept
    monkeypatch.undo()
    retry = await registry.post("/v1/households", json=household_body(), headers=headers)
    assert retry.status_code == 409 and retry.json()["type"].endswith("/idempotency-key-in-flight")
    registry.clock.advance(minutes=11)
    retry = await registry.post("/v1/households", json=household_body(), headers=headers)
    assert retry.json()["type"].endswith("/idempotency-outcome-unknown")
    assert await count(registry.app, households) == 1


async def test_concurrent_twins_execute_once(registry):
    headers = key()
    answers = await asyncio.gather(*(registry.post("/v1/households", json=household_body(), headers=headers)
                                     for _ in range(4)))
    created = [a for a in answers if a.status_code == 201]
    assert created and all(a.status_code in (201, 409) for a in answers)
    assert len({a.json()["id"] for a in created}) == 1
    assert all(a.json()["type"].endswith("/idempotency-key-in-flight") for a in answers if a.status_code == 409)
    assert await count(registry.app, households) == 1


async def test_deterministic_refusals_are_kept_and_retryable_ones_are_not(registry, monkeypatch):
    headers = key()
    invalid = await registry.post("/v1/households", json={"members": "nobody"}, headers=headers)
    assert invalid.status_code == 422
    again = await registry.post("/v1/households", json={"members": "nobody"}, headers=headers)
    assert (again.status_code, again.json()) == (422, invalid.json()) and again.headers["idempotent-replayed"] == "true"

    # 403: the caller may get the scope; nothing is kept
    reader = {**key(), "Authorization": f"Bearer {mint_token(registry.settings, 'registry:read')}"}
    assert (await registry.post("/v1/households", json=household_body(), headers=reader)).status_code == 403
    # 401 (bad token): passed through untouched, the route answers
    bad = {**key(), "Authorization": "Bearer not-a-token"}
    refused = await registry.post("/v1/households", json=household_body(), headers=bad)
    assert refused.status_code == 401 and refused.json()["title"] == "Invalid token"
    assert await count(registry.app, registry_keys) == 1

    # 5xx: a retry after the fault is repaired creates normally
    from services.registry.households import service as household_service
    real = household_service.create_household

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(household_service, "create_household", broken)
    server_error = {**key()}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=registry.app, raise_app_exceptions=False),
                                 base_url="http://test", headers=registry.headers) as client:
        assert (await client.post("/v1/households", json=household_body(), headers=server_error)).status_code == 500
    monkeypatch.setattr(household_service, "create_household", real)
    retried = await registry.post("/v1/households", json=household_body(), headers=server_error)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert await count(registry.app, households) == 1


@pytest.mark.parametrize("value, accepted", [
    ("a" * 255, True), ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', True), ("a" * 256, False), ("two words", False),
    ("", False), ("键", False)])
async def test_key_syntax(registry, value, accepted):
    response = await registry.post("/v1/households", json=household_body(),
                                   headers={"Idempotency-Key": value.encode()})
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
        assert response.json()["header"] == "Idempotency-Key" and "Idempotency-Key" in response.json()["detail"]
        assert await count(registry.app, households) == 0


async def test_a_quoted_key_is_the_same_key_as_the_bare_one(registry):
    bare = str(uuid.uuid4())
    first = await registry.post("/v1/households", json=household_body(), headers={"Idempotency-Key": bare})
    quoted = await registry.post("/v1/households", json=household_body(), headers={"Idempotency-Key": f'"{bare}"'})
    assert quoted.json() == first.json() and quoted.headers["idempotent-replayed"] == "true"


async def test_a_re_encoded_upload_is_the_same_request(registry):
    """A client retrying a multipart upload picks a new boundary; the parts are what count."""
    data, headers = _ledger(31), key()
    first = await registry.post("/v1/imports", files={"file": ("l.csv", data, "text/csv")}, headers=headers)
    again = await registry.post("/v1/imports", files={"file": ("l.csv", data, "text/csv")}, headers=headers)
    assert first.status_code == 201 and again.json() == first.json()
    renamed = await registry.post("/v1/imports", files={"file": ("other.csv", data, "text/csv")}, headers=headers)
    assert renamed.status_code == 422
    dry = await registry.post("/v1/imports", files={"file": ("l.csv", data, "text/csv")}, data={"dry_run": "true"},
                              headers=headers)
    assert dry.status_code == 422
    assert await count(registry.app, imports) == 1


async def test_a_key_used_on_another_route_is_422(registry):
    context = await _cadre(registry)
    headers = key()
    assert (await registry.post("/v1/cadres", json={"id": "c-9", "name": "九", "unit": "u"}, headers=headers)
            ).status_code == 201
    elsewhere = await registry.post(f"/v1/households/{context['hid']}/pairings", json={"cadre_id": "c-9"},
                                    headers=headers)
    assert elsewhere.status_code == 422 and elsewhere.json()["first_request"]["route"] == "POST /v1/cadres"
    assert await count(registry.app, pairings) == 1


async def test_routes_that_do_not_create_ignore_the_header(registry):
    hid = (await _household(registry))["hid"]
    headers = {**key(), "Content-Type": "application/merge-patch+json", "If-Match": '"1"'}
    patched = await registry.patch(f"/v1/households/{hid}", content=b'{"dibao_class": "B"}', headers=headers)
    assert patched.status_code == 200 and "idempotent-replayed" not in patched.headers
    assert await count(registry.app, registry_keys) == 0


@pytest.mark.parametrize("make_app, routes", [
    (lambda: registry_app.create_app(), registry_app.IDEMPOTENT_POSTS),
    (lambda: benefits_app.create_app(), benefits_app.IDEMPOTENT_POSTS)])
def test_openapi_documents_the_header_on_every_creating_post(make_app, routes):
    schema = make_app().openapi()
    for template in routes:
        assert "post" in schema["paths"].get(template, {}), f"{template} is not a POST route"
        parameter = [p for p in schema["paths"][template]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        assert len(parameter) == 1, template
        assert parameter[0]["in"] == "header" and parameter[0]["required"] is False
        assert parameter[0]["schema"]["maxLength"] == 255
        assert "幂等键" in parameter[0]["description"] and "same key" in parameter[0]["description"]
    documented = {path for path, operations in schema["paths"].items() for operation in operations.values()
                  if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))}
    assert documented == set(routes)


def test_the_creating_posts_the_issue_names_are_covered():
    assert {"/v1/households", "/v1/households/{household_id}/members", "/v1/households/{household_id}/transitions",
            "/v1/cadres", "/v1/households/{household_id}/pairings", "/v1/imports"} <= set(registry_app.IDEMPOTENT_POSTS)
    assert {"/v1/credit/loans", "/v1/credit/interest-claims", "/v1/settlements/one-stop"} <= \
        set(benefits_app.IDEMPOTENT_POSTS)
