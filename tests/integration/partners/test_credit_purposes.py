"""Loan purposes are a closed vocabulary: banks' own words are normalised, anything else is 422."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.benefits.partners.tables import credit_decisions, credit_loans
from tests.integration.partners.conftest import FARMER_ID

ASK = {"id_number": FARMER_ID, "amount": "50000.00", "term_months": 36}


@pytest.mark.parametrize(("wording", "code"), [
    ("婚嫁", "wedding"), ("结婚", "wedding"), ("Wedding", "wedding"), ("建房", "house_building"),
    ("盖房", "house_building"), ("house building", "house_building"), ("理财", "investment_products")])
async def test_refused_purposes_in_the_banks_own_words(partners, wording, code):
    response = await partners.bank.post("/v1/credit/eligibility", json=ASK | {"purpose": wording})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["eligible"] is False and body["reasons"] == ["purpose_excluded"]
    assert body["purpose"] == code and body["max_amount"] == "0.00"


async def test_productive_wording_is_eligible_and_echoes_the_code(partners):
    body = (await partners.bank.post("/v1/credit/eligibility", json=ASK | {"purpose": "养猪"})).json()
    assert body["eligible"] is True and body["purpose"] == "livestock" and body["max_amount"] == "50000.00"


async def count(partners, table) -> int:
    async with partners.app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def test_unknown_purpose_is_422_listing_the_codes_and_writes_nothing(partners):
    before = len(await partners.outbox_payloads())
    response = await partners.bank.post("/v1/credit/eligibility", json=ASK | {"purpose": "xyz"},
                                        headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "unknown_purpose" and problem["errors"][0]["loc"] == ["body", "purpose"]
    accepted = {item["code"]: item for item in problem["accepted"]}
    assert accepted["wedding"]["label_zh"] == "结婚" and accepted["wedding"]["label_en"] == "Wedding"
    assert accepted["livestock"]["productive"] is True and "house_building" in accepted
    assert "livestock (畜禽养殖, Livestock and poultry)" in problem["detail"] and "用途" in problem["detail"]
    assert await count(partners, credit_decisions) == 0
    assert len(await partners.outbox_payloads()) == before  # no access event for a refused request


async def test_loan_issuance_normalises_the_purpose_and_refuses_unknown_ones(partners):
    report = {"report_id": "p-1", "loan_id": "P-1", "event": "issuance", "date": "2020-03-01",
              "id_number": FARMER_ID, "amount": "10000", "due_date": "2021-03-01"}
    unknown = await partners.bank.post("/v1/credit/loans", json=report | {"purpose": "xyz"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_purpose"
    assert await count(partners, credit_loans) == 0
    wedding = (await partners.bank.post("/v1/credit/loans", json=report | {"purpose": "婚嫁"})).json()
    assert wedding["loan"]["purpose"] == "wedding" and wedding["loan"]["subsidy_eligible"] is False
    assert wedding["loan"]["reasons"] == ["purpose_excluded"]
    farm = (await partners.bank.post("/v1/credit/loans", json=report | {"report_id": "p-2", "loan_id": "P-2",
                                                                        "purpose": "Crop farming"})).json()
    assert farm["loan"]["purpose"] == "crops" and farm["loan"]["subsidy_eligible"] is True


async def test_openapi_lists_the_purpose_codes_with_labels(partners):
    schema = (await partners.admin.get("/openapi.json")).json()["components"]["schemas"]
    purpose = schema["EligibilityRequest"]["properties"]["purpose"]
    assert "wedding" in purpose["enum"] and "livestock" in purpose["enum"]
    assert "| `wedding` | 结婚 | Wedding |" in purpose["description"]
    assert "house_building" in schema["LoanReport"]["properties"]["purpose"]["enum"]


async def test_monitored_exited_household_bank_and_office_agree(databases, tmp_path):
    """The issue's case: the bank said exited_household_new_loan, the office view said eligible 50,000."""
    from tests.integration.partners.conftest import household, make_partners, new_number, settings_for
    numbers = [new_number(i, "360782") for i in range(41, 45)]
    snapshot = household("hh-mon-1", status="monitored", exit_date="2019-12-20", numbers=numbers)
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, [snapshot]):
        bank = (await partners.bank.post("/v1/credit/eligibility", json={
            "id_number": numbers[0], "amount": "50000", "term_months": 36, "purpose": "livestock"})).json()
        office = (await partners.admin.get("/v1/households/hh-mon-1/entitlements")).json()
        programs = {e["program"]: e for e in office["entitlements"]}
        assert bank["eligible"] is False and bank["reasons"] == ["exited_household_new_loan"]
        assert "education.boarding" in programs  # the office view does list this household's entitlements
        assert "credit.microloan" not in programs  # it lists eligible ones only; before, 50,000 was here
        renewal = (await partners.bank.post("/v1/credit/eligibility", json={
            "id_number": numbers[0], "amount": "50000", "term_months": 36, "purpose": "livestock",
            "kind": "renewal"})).json()
        assert renewal["eligible"] is True and renewal["max_amount"] == "50000.00"
