"""Partner identity on SQLite and PostgreSQL: tokens, rotation, disable, scope matrix, rate limit, no clear IDs."""
from __future__ import annotations

import base64
import json
import logging

import pytest

from shared.auth import mint_token
from tests.integration.partners.conftest import (ELDERLY_ID, FARMER_ID, base_households, make_partners,
                                                 settings_for, token_for)

ALL_IDS = [FARMER_ID, ELDERLY_ID, "360782198001200022", "360782200705010016", "360782200203080022",
           "360782195011020021"]

# One call per endpoint family: (family, method, path, body)
CALLS = {
    "credit": [("POST", "/v1/credit/eligibility",
                {"id_number": FARMER_ID, "amount": "1000", "term_months": 12, "purpose": "livestock"}),
               ("GET", "/v1/credit/interest-claims/totals", None),
               ("POST", "/v1/credit/interest-claims",
                {"claim_id": "m-1", "year": 2020, "quarter": 1, "lines": [{"loan_id": "x", "claimed_amount": "1"}]}),
               ("POST", "/v1/credit/loans", {"report_id": "m-r", "loan_id": "m-l", "event": "issuance",
                                             "date": "2020-01-02", "id_number": FARMER_ID, "amount": "1000",
                                             "due_date": "2021-01-02", "purpose": "livestock"})],
    "settlement": [("POST", "/v1/settlements/one-stop",
                    {"id_number": FARMER_ID, "admission_date": "2020-05-01", "discharge_date": "2020-05-02",
                     "hospital_level": 1, "in_district": True, "total_cost": "100", "in_policy_cost": "100"}),
                   ("GET", "/v1/settlements/roster", None), ("GET", "/v1/settlements", None)],
    "admin": [("POST", "/v1/partners/clients", {"name": "x", "scopes": ["credit"]}),
              ("GET", "/v1/partners/clients", None)],
    "benefits": [("GET", "/v1/households/hh-nk-0001/entitlements", None)],
}


@pytest.mark.parametrize("scope", ["credit", "settlement"])
async def test_scope_matrix(partners, scope):
    client = partners.bank if scope == "credit" else partners.insurer
    for family, calls in CALLS.items():
        for method, path, body in calls:
            response = await client.request(method, path, json=body)
            expected = 200 if family == scope else 403
            assert response.status_code in ((200, 201) if expected == 200 else (403,)), (scope, path, response.text)
            if expected == 403:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["status"] == 403
    assert (await client.get("/v1/partners/whoami")).json()["scopes"] == [scope]


async def test_token_with_basic_auth_narrowing_and_bad_secret(partners):
    basic = base64.b64encode(f"{partners.bank_id}:{partners.bank_secret}".encode()).decode()
    ok = await partners.admin.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200 and ok.json()["scope"] == "credit" and ok.json()["token_type"] == "Bearer"
    claims = partners.app.state.token_verifier.verify(ok.json()["access_token"])
    assert claims.client_id == partners.bank_id and claims.scopes == frozenset({"credit"})
    wrong = await partners.admin.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partners.bank_id, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["content-type"] == "application/problem+json"
    widen = await partners.admin.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partners.bank_id, "client_secret": partners.bank_secret,
        "scope": "credit settlement"})
    assert widen.status_code == 400 and widen.json()["error"] == "invalid_scope"
    grant = await partners.admin.post("/oauth/token", data={"grant_type": "password"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    bad_scope = await partners.admin.post("/v1/partners/clients", json={"name": "x", "scopes": ["admin"]})
    assert bad_scope.status_code == 422


async def test_rotate_and_disable(partners):
    rotated = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:rotate", json={})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    old = await partners.admin.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partners.bank_id, "client_secret": partners.bank_secret})
    assert old.status_code == 401
    token = await token_for(partners.admin, partners.bank_id, new_secret)
    graced = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:rotate",
                                       json={"grace_seconds": 600})
    assert (await token_for(partners.admin, partners.bank_id, new_secret))  # old secret still works in grace
    assert await token_for(partners.admin, partners.bank_id, graced.json()["client_secret"])
    disabled = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:disable")
    assert disabled.json()["status"] == "disabled"
    refused = await partners.admin.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": partners.bank_id,
        "client_secret": graced.json()["client_secret"]})
    assert refused.status_code == 401
    async with partners.client(token) as old_token_client:
        assert (await old_token_client.get("/v1/partners/whoami")).status_code == 401
    listed = (await partners.admin.get("/v1/partners/clients")).json()["items"]
    assert {c["client_id"]: c["status"] for c in listed}[partners.bank_id] == "disabled"
    assert "secret" not in json.dumps(listed)


async def test_rate_limit_429_with_retry_after(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path, partner_rate_per_s=0.5, partner_burst=3)
    async for partners in make_partners(settings, base_households()):
        statuses = [(await partners.bank.get("/v1/partners/whoami")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await partners.bank.get("/v1/credit/interest-claims/totals")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        # Buckets are per client: the insurer is not affected.
        assert (await partners.insurer.get("/v1/partners/whoami")).status_code == 200


async def test_no_clear_id_number_in_logs_or_outbox(partners, caplog):
    caplog.set_level(logging.DEBUG)
    for number in ALL_IDS:
        await partners.bank.post("/v1/credit/eligibility", json={
            "id_number": number, "amount": "1000", "term_months": 12, "purpose": "livestock"})
        await partners.insurer.post("/v1/settlements/one-stop", json={
            "id_number": number, "admission_date": "2020-05-01", "discharge_date": "2020-05-02",
            "hospital_level": 1, "in_district": True, "total_cost": "100", "in_policy_cost": "100"})
    await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r1", "loan_id": "l1", "event": "issuance", "date": "2020-01-02", "id_number": FARMER_ID,
        "amount": "1000", "due_date": "2021-01-02", "purpose": "livestock"})
    await partners.bank.post("/v1/credit/interest-claims", json={
        "claim_id": "c1", "year": 2020, "quarter": 1, "lines": [{"loan_id": "l1", "claimed_amount": "1"}]})
    await partners.insurer.get("/v1/settlements/roster")
    await partners.insurer.get("/v1/settlements")
    bad = FARMER_ID[:-1] + ("1" if FARMER_ID[-1] != "1" else "2")
    await partners.bank.post("/v1/credit/eligibility", json={
        "id_number": bad, "amount": "1000", "term_months": 12, "purpose": "livestock"})
    payloads = json.dumps(await partners.outbox_payloads(), ensure_ascii=False)
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "partner.access" in payloads and "settlement.decided" in payloads
    for number in ALL_IDS + [bad]:
        assert number not in payloads
        assert number not in logged
    access = [e for e in await partners.outbox_payloads() if e["type"] == "partner.access"]
    assert len(access) >= 2 * len(ALL_IDS) + 4


async def test_admin_token_without_client_id_is_not_a_partner_but_may_call(partners):
    token = mint_token(partners.settings, "admin", subject="ops")
    async with partners.client(token) as admin:
        response = await admin.get("/v1/settlements")
        assert response.status_code == 200
