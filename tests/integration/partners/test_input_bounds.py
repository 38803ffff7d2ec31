"""Partner input outside its value ranges is a 422 problem+json and stores nothing; partner timestamps carry
their zone (issue 9 item 6 and the schemathesis response-schema finding)."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from services.benefits.partners.tables import credit_loan_events, credit_loans, settlements
from services.benefits.tables import outbox
from tests.integration.partners.conftest import FARMER_ID

BILL = {"id_number": FARMER_ID, "admission_date": "2020-05-01", "discharge_date": "2020-05-10",
        "hospital_level": 2, "in_district": True, "total_cost": "20000.00", "in_policy_cost": "18000.00"}
ISSUE = {"report_id": "r-bounds-1", "loan_id": "L-bounds-1", "event": "issuance", "date": "2020-03-01",
         "id_number": FARMER_ID, "amount": "30000.00", "due_date": "2023-03-01", "purpose": "livestock"}


async def _counts(app) -> tuple[int, ...]:
    async with app.state.sessionmaker() as session:
        return tuple([await session.scalar(select(func.count()).select_from(table))
                      for table in (credit_loans, credit_loan_events, settlements, outbox)])


def _assert_problem(response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("change", [
    {"amount": "-30000.00"}, {"amount": "0"}, {"amount": "0.00"}, {"date": "0001-01-01"},
    {"due_date": "9999-12-31"}, {"date": "1899-12-31"},
], ids=["negative-loan", "zero-loan", "zero-loan-fen", "date-0001", "due-9999", "date-1899"])
async def test_a_loan_report_out_of_range_is_422_and_stores_nothing(partners, change):
    before = await _counts(partners.app)
    _assert_problem(await partners.bank.post("/v1/credit/loans", json=ISSUE | change))
    assert await _counts(partners.app) == before


async def test_a_zero_repayment_is_422(partners):
    issued = await partners.bank.post("/v1/credit/loans", json=ISSUE)
    assert issued.status_code == 200, issued.text
    before = await _counts(partners.app)
    _assert_problem(await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r-bounds-2", "loan_id": "L-bounds-1", "event": "repayment", "date": "2020-06-01",
        "amount": "0.00"}))
    assert await _counts(partners.app) == before


@pytest.mark.parametrize("change", [
    {"total_cost": "0.00", "in_policy_cost": "0.00"}, {"total_cost": "-20000.00"},
    {"in_policy_cost": "-1.00"}, {"admission_date": "0001-01-01"}, {"discharge_date": "9999-12-31"},
], ids=["zero-cost", "negative-cost", "negative-in-policy", "admitted-0001", "discharged-9999"])
async def test_a_settlement_out_of_range_is_422_and_stores_nothing(partners, change):
    before = await _counts(partners.app)
    _assert_problem(await partners.insurer.post("/v1/settlements/one-stop", json=BILL | change))
    assert await _counts(partners.app) == before


async def test_coverage_lookup_as_of_in_year_1_is_422(partners):
    _assert_problem(await partners.insurer.post("/v1/settlements/coverage:lookup",
                                                json={"id_numbers": [FARMER_ID], "as_of": "0001-01-01"}))


async def test_partner_client_timestamps_carry_a_time_zone(partners):
    listed = (await partners.admin.get("/v1/partners/clients")).json()["items"]
    created = await partners.admin.post("/v1/partners/clients", json={"name": "Zone Bank", "scopes": ["credit"]})
    rotated = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:rotate",
                                        json={"grace_seconds": 60})
    stamps = [item["created_at"] for item in listed] + [created.json()["created_at"], rotated.json()["rotated_at"],
                                                        rotated.json()["previous_secret_valid_until"]]
    assert len(stamps) >= 5
    for stamp in stamps:
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None, stamp
