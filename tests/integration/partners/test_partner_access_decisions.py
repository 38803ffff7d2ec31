"""Supervision's partner-access log shows each access's real decision, end to end (benefits → audit).

Before, a subsidised loan and a settlement that paid 18,000 both showed `eligible: false`:
the access events said only `issuance` / `settled`, and audit read any word but
`eligible` / `approved` / `granted` as a no.
"""
from __future__ import annotations

import json

from services.audit.app import create_app as create_audit_app
from shared.auth import mint_token
from shared.config import AuditSettings
from shared.events import Envelope
from tests.helpers import running_app
from tests.integration.audit.support import feed
from tests.integration.partners.conftest import FARMER_ID, UNKNOWN_ID

STAY = {"claim_id": "PA-1", "id_number": FARMER_ID, "admission_date": "2020-05-01", "discharge_date": "2020-05-10",
        "hospital_level": 2, "in_district": True, "total_cost": "20000.00", "in_policy_cost": "18000.00"}


async def test_partner_access_shows_loan_settlement_and_lookup_decisions(partners, databases, tmp_path):
    bank, insurer = partners.bank, partners.insurer
    issued = (await bank.post("/v1/credit/loans", json={
        "report_id": "PA-R1", "loan_id": "PA-L1", "event": "issuance", "date": "2020-01-15", "id_number": FARMER_ID,
        "amount": "36000", "due_date": "2022-01-15", "purpose": "养牛"})).json()
    assert issued["loan"]["subsidy_eligible"] is True
    refused = (await bank.post("/v1/credit/loans", json={
        "report_id": "PA-R2", "loan_id": "PA-L2", "event": "issuance", "date": "2020-01-15", "id_number": FARMER_ID,
        "amount": "10000", "due_date": "2021-01-15", "purpose": "盖房"})).json()
    assert refused["loan"]["subsidy_eligible"] is False
    settled = (await insurer.post("/v1/settlements/one-stop", json=STAY)).json()
    assert settled["eligible"] is True and settled["patient_pays"] == "2000.00"
    looked = (await insurer.post("/v1/settlements/coverage:lookup",
                                 json={"id_numbers": [FARMER_ID, UNKNOWN_ID]})).json()
    assert looked["covered"] == 1

    access = [Envelope.model_validate({k: v for k, v in event.items() if k != "topic"})
              for event in await partners.outbox_payloads() if event["type"] == "partner.access"]
    settings = AuditSettings(var_dir=tmp_path / "audit", database_url=await databases.url("audit"),
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    audit_app = create_audit_app(settings, id_hash_key="test-key", checkpoint_schedule=False)
    async with running_app(audit_app, mint_token(settings, "audit:read")) as audit:
        await feed(audit_app, *access, partition=1)
        items = (await audit.get("/v1/supervision/partner-access", params={"limit": 50})).json()["items"]

    by_endpoint = {}
    for item in items:
        by_endpoint.setdefault(item["endpoint"], []).append(item)
    subsidised, refusal = by_endpoint["POST /v1/credit/loans"]
    assert (subsidised["decision"], subsidised["eligible"]) == ("subsidised", True)
    assert subsidised["outcome"]["principal"] == "36000.00" and subsidised["outcome"]["loan_id"] == "PA-L1"
    assert subsidised["household_id"] == "hh-nk-0001" and subsidised["kind"] == "delivery"
    assert (refusal["decision"], refusal["eligible"]) == ("refused", False)
    assert refusal["outcome"]["reasons"] == ["purpose_excluded"]
    [settlement] = by_endpoint["POST /v1/settlements/one-stop"]
    assert (settlement["decision"], settlement["eligible"]) == ("settled", True)
    assert settlement["outcome"]["paid"] == "18000.00" and settlement["outcome"]["patient_pays"] == "2000.00"
    assert settlement["id_number"] == "360782********0018"
    [lookup] = by_endpoint["POST /v1/settlements/coverage:lookup"]
    assert lookup["eligible"] is None and lookup["decision"] == "lookup: 2 submitted, 1 covered"
    assert (lookup["outcome"]["submitted"], lookup["outcome"]["matched"], lookup["outcome"]["covered"]) == (2, 1, 1)
    assert FARMER_ID not in json.dumps(items) and UNKNOWN_ID not in json.dumps(items)

