"""Bank endpoints on SQLite and PostgreSQL: eligibility, loans, quarterly interest-subsidy claims."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.clock import today_in_china
from tests.integration.partners.conftest import (AS_OF, FARMER_ID, UNKNOWN_ID, household, make_partners,
                                                 new_number, settings_for, store)

RATE = Decimal("0.0475")


def interest(principal: str, days: int) -> str:
    return str((Decimal(principal) * RATE / 360 * days).quantize(Decimal("0.01")))


async def test_registered_farmer_is_eligible_and_access_is_logged(partners):
    today = today_in_china()
    response = await partners.bank.post("/v1/credit/eligibility", json={
        "id_number": FARMER_ID, "amount": "50000.00", "term_months": 36, "purpose": "livestock"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["eligible"] is True and body["reasons"] == []
    assert body["max_amount"] == "50000.00" and body["max_term_months"] == 36
    assert body["collateral_required"] is False and body["interest_subsidy_rate"] == "1.00"
    assert body["id_number"] == "360782********0018"
    # Judged under the demo's policy date, valid counted from the real day (China time) it is made.
    assert body["as_of"] == AS_OF.isoformat() == "2020-06-30"
    assert body["valid_until"] in {(day + dt.timedelta(days=30)).isoformat() for day in (today, today_in_china())}
    access = [e for e in await partners.outbox_payloads() if e["topic"] == "jz.access.v1"]
    assert access[-1]["type"] == "partner.access"
    assert access[-1]["subject"] == f"client/{partners.bank_id}"
    assert access[-1]["data"]["decision_id"] == body["decision_id"]
    assert access[-1]["data"]["id_number"] == "360782********0018"
    assert access[-1]["data"]["scope"] == "credit" and access[-1]["data"]["endpoint"] == "POST /v1/credit/eligibility"


async def test_unknown_person_is_200_not_registered_only(partners):
    response = await partners.bank.post("/v1/credit/eligibility", json={
        "id_number": UNKNOWN_ID, "amount": "9999999.00", "term_months": 99, "purpose": "wedding"})
    assert response.status_code == 200
    assert response.json()["eligible"] is False and response.json()["reasons"] == ["not_registered"]
    assert response.json()["max_amount"] == "0.00"


@pytest.mark.parametrize("changes, reason", [
    ({"amount": "50000.01"}, "amount_above_limit"),
    ({"term_months": 37}, "term_above_limit"),
    ({"purpose": "wedding"}, "purpose_excluded"),
    ({"purpose": "house_building"}, "purpose_excluded"),
])
async def test_nankang_limits_and_refused_purposes(partners, changes, reason):
    body = {"id_number": FARMER_ID, "amount": "50000.00", "term_months": 36, "purpose": "livestock"} | changes
    result = (await partners.bank.post("/v1/credit/eligibility", json=body)).json()
    assert result["eligible"] is False and reason in result["reasons"]


async def test_bad_id_number_is_422_without_the_number(partners):
    bad = FARMER_ID[:-1] + "9"
    response = await partners.bank.post("/v1/credit/eligibility", json={
        "id_number": bad, "amount": "1000", "term_months": 12, "purpose": "livestock"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert bad not in response.text


@pytest.fixture
async def qinzhou(databases, tmp_path):
    numbers = [new_number(i, "450702") for i in range(1, 5)]
    exited_window = [new_number(i, "450702") for i in range(11, 15)]
    exited_old = [new_number(i, "450702") for i in range(21, 25)]
    households = [household("hh-qz-1", region="450702", numbers=numbers),
                  household("hh-qz-2", region="450702", status="exited", exit_date="2019-03-01",
                            numbers=exited_window),
                  household("hh-qz-3", region="450702", status="exited", exit_date="2017-03-01",
                            numbers=exited_old)]
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, households):
        partners.numbers = {"registered": numbers[0], "exited_window": exited_window[0],
                            "exited_old": exited_old[0]}
        yield partners


async def test_qinzhou_up_to_100000_with_county_paying_above_50000(qinzhou):
    ask = {"id_number": qinzhou.numbers["registered"], "term_months": 36, "purpose": "livestock"}
    big = (await qinzhou.bank.post("/v1/credit/eligibility", json=ask | {"amount": "100000"})).json()
    assert big["eligible"] and big["max_amount"] == "100000.00" and big["county_pays_interest"] is True
    small = (await qinzhou.bank.post("/v1/credit/eligibility", json=ask | {"amount": "50000"})).json()
    assert small["eligible"] and small["county_pays_interest"] is False
    over = (await qinzhou.bank.post("/v1/credit/eligibility", json=ask | {"amount": "100000.01"})).json()
    assert over["reasons"] == ["amount_above_limit"]


async def test_exited_households_only_renew_or_extend_within_window(qinzhou):
    ask = {"amount": "20000", "term_months": 12, "purpose": "livestock"}
    within = qinzhou.numbers["exited_window"]
    renewal = (await qinzhou.bank.post("/v1/credit/eligibility",
                                       json=ask | {"id_number": within, "kind": "renewal"})).json()
    assert renewal["eligible"] is True
    new = (await qinzhou.bank.post("/v1/credit/eligibility", json=ask | {"id_number": within})).json()
    assert new["reasons"] == ["exited_household_new_loan"]
    old = (await qinzhou.bank.post("/v1/credit/eligibility",
                                   json=ask | {"id_number": qinzhou.numbers["exited_old"], "kind": "extension"})).json()
    assert old["reasons"] == ["post_exit_window_closed"]


async def issue(bank, loan_id: str, id_number: str, amount: str, on: str, due: str, report: str | None = None):
    response = await bank.post("/v1/credit/loans", json={
        "report_id": report or f"r-{loan_id}-issue", "loan_id": loan_id, "event": "issuance", "date": on,
        "id_number": id_number, "amount": amount, "due_date": due, "purpose": "livestock"})
    assert response.status_code == 200, response.text
    return response.json()


async def claim(bank, claim_id: str, year: int, quarter: int, lines: list[tuple[str, str]]):
    response = await bank.post("/v1/credit/interest-claims", json={
        "claim_id": claim_id, "year": year, "quarter": quarter,
        "lines": [{"loan_id": loan, "claimed_amount": amount} for loan, amount in lines]})
    assert response.status_code == 200, response.text
    return response.json()


async def test_loan_lifecycle_and_quarterly_claim(partners):
    issued = await issue(partners.bank, "L-1", FARMER_ID, "36000", "2019-11-15", "2021-11-15")
    assert issued["loan"]["subsidy_eligible"] is True and issued["loan"]["outstanding"] == "36000.00"
    # Q4 2019: from 15 November (issue day counts) to 31 December = 47 days.
    q4 = await claim(partners.bank, "C-2019Q4", 2019, 4, [("L-1", interest("36000", 47))])
    assert q4["lines"][0]["status"] == "approved", q4
    assert q4["lines"][0]["eligible_days"] == 47
    # Repay 16,000 on 1 March 2020: Q1 = 60 days at 36,000 (Jan 1 - Feb 29) + 31 at 20,000.
    repaid = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r-L-1-repay-1", "loan_id": "L-1", "event": "repayment", "date": "2020-03-01",
        "amount": "16000"})
    assert repaid.json()["loan"]["outstanding"] == "20000.00"
    expected = (Decimal("36000") * RATE / 360 * 60 + Decimal("20000") * RATE / 360 * 31).quantize(Decimal("0.01"))
    q1 = await claim(partners.bank, "C-2020Q1", 2020, 1, [("L-1", str(expected + Decimal("0.01"))),
                                                          ("L-404", "10.00")])
    assert [l["status"] for l in q1["lines"]] == ["rejected", "rejected"]
    assert q1["lines"][0]["reason"] == "amount_exceeds_subsidy" and q1["lines"][0]["computed_subsidy"] == str(expected)
    assert q1["lines"][1]["reason"] == "unknown_loan"
    q1b = await claim(partners.bank, "C-2020Q1-b", 2020, 1, [("L-1", str(expected))])
    assert q1b["lines"][0]["status"] == "approved" and q1b["total_approved"] == str(expected)
    again = await claim(partners.bank, "C-2020Q1-c", 2020, 1, [("L-1", "1.00")])
    assert again["lines"][0]["reason"] == "already_claimed"
    q3 = await claim(partners.bank, "C-2020Q3", 2020, 3, [("L-1", "1.00")])
    assert q3["lines"][0]["reason"] == "quarter_not_ended"
    totals = (await partners.bank.get("/v1/credit/interest-claims/totals", params={"year": 2020})).json()["items"]
    q1_total = next(t for t in totals if t["quarter"] == 1)
    assert q1_total["client_id"] == partners.bank_id and q1_total["total_approved"] == str(expected)
    assert q1_total["claims"] == 3 and q1_total["approved_lines"] == 1 and q1_total["rejected_lines"] == 3


async def test_claim_is_idempotent_by_claim_id(partners):
    await issue(partners.bank, "L-2", FARMER_ID, "10000", "2019-12-01", "2020-12-01")
    amount = interest("10000", 91)
    first = await claim(partners.bank, "C-idem", 2020, 1, [("L-2", amount)])
    second = await claim(partners.bank, "C-idem", 2020, 1, [("L-2", amount)])
    assert first == second and first["lines"][0]["status"] == "approved"
    totals = (await partners.bank.get("/v1/credit/interest-claims/totals")).json()["items"]
    assert [t["total_approved"] for t in totals if (t["year"], t["quarter"]) == (2020, 1)] == [amount]
    reused = await partners.bank.post("/v1/credit/interest-claims", json={
        "claim_id": "C-idem", "year": 2020, "quarter": 1, "lines": [{"loan_id": "L-2", "claimed_amount": "1"}]})
    assert reused.status_code == 409
    decided = [e for e in await partners.outbox_payloads() if e["type"] == "credit.interest_claim.decided"]
    assert len(decided) == 1 and decided[0]["topic"] == "jz.benefits.v1"


async def test_loan_report_is_idempotent_by_report_id(partners):
    await issue(partners.bank, "L-3", FARMER_ID, "10000", "2020-01-10", "2021-01-10")
    body = {"report_id": "rep-1", "loan_id": "L-3", "event": "repayment", "date": "2020-02-01", "amount": "1000"}
    first = (await partners.bank.post("/v1/credit/loans", json=body)).json()
    second = (await partners.bank.post("/v1/credit/loans", json=body)).json()
    assert first["loan"]["outstanding"] == second["loan"]["outstanding"] == "9000.00"
    assert second["replayed"] is True


async def test_covid_extension_continues_the_subsidy(partners):
    await issue(partners.bank, "L-4", FARMER_ID, "30000", "2017-05-01", "2020-05-01")
    too_long = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "ext-0", "loan_id": "L-4", "event": "extension", "date": "2020-04-20",
        "new_due_date": "2020-11-02", "covid": True})
    assert too_long.status_code == 422 and too_long.json()["code"] == "covid_extension_too_long"
    extended = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "ext-1", "loan_id": "L-4", "event": "extension", "date": "2020-04-20",
        "new_due_date": "2020-11-01", "covid": True})
    assert extended.status_code == 200, extended.text
    assert extended.json()["loan"]["subsidised_until"] == "2020-10-31"
    q2 = await claim(partners.bank, "C-covid", 2020, 2, [("L-4", interest("30000", 91))])
    assert q2["lines"][0]["status"] == "approved" and q2["lines"][0]["eligible_days"] == 91


async def test_plain_extension_stops_the_subsidy_at_maturity(partners):
    await issue(partners.bank, "L-5", FARMER_ID, "30000", "2017-05-01", "2020-05-01")
    await partners.bank.post("/v1/credit/loans", json={
        "report_id": "ext-5", "loan_id": "L-5", "event": "extension", "date": "2020-04-20",
        "new_due_date": "2020-08-01"})
    q2 = await claim(partners.bank, "C-plain", 2020, 2, [("L-5", interest("30000", 30))])
    assert q2["lines"][0]["status"] == "approved" and q2["lines"][0]["eligible_days"] == 30  # April only


async def test_default_and_renewal(partners):
    await issue(partners.bank, "L-6", FARMER_ID, "20000", "2019-06-01", "2020-06-01")
    renewal = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "ren-6", "loan_id": "L-6", "event": "renewal", "date": "2020-02-01",
        "new_loan_id": "L-7", "amount": "20000", "due_date": "2021-02-01"})
    assert renewal.status_code == 200, renewal.text
    assert renewal.json()["loan"]["status"] == "renewed" and renewal.json()["new_loan"]["kind"] == "renewal"
    defaulted = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "def-7", "loan_id": "L-7", "event": "default", "date": "2020-03-01"})
    assert defaulted.json()["loan"]["status"] == "defaulted"
    q1 = await claim(partners.bank, "C-ren", 2020, 1, [("L-6", interest("20000", 31)), ("L-7", interest("20000", 29))])
    assert [(l["status"], l["eligible_days"]) for l in q1["lines"]] == [("approved", 31), ("approved", 29)]


async def test_mid_quarter_eligibility_change_counts_only_eligible_days(qinzhou):
    # hh-qz-1 is registered; it exits on 2020-02-15 and Qinzhou keeps policies 2 years: still eligible.
    # hh-qz-3 exited 2017-03-01: the window closed 2019-03-01; a loan from before counts only until then.
    await issue(qinzhou.bank, "Q-1", qinzhou.numbers["registered"], "60000", "2019-01-01", "2021-12-31")
    await store(qinzhou.app, household("hh-qz-1", region="450702", status="exited", exit_date="2020-02-15",
                                       version=2, numbers=[qinzhou.numbers["registered"]] + [
                                           new_number(i, "450702") for i in range(2, 5)]))
    q1 = await claim(qinzhou.bank, "QC-1", 2020, 1, [("Q-1", interest("60000", 91))])
    assert q1["lines"][0]["status"] == "approved" and q1["lines"][0]["payer"] == "county_finance"
    # Removed mid-quarter: days from the removal on do not count.
    await store(qinzhou.app, household("hh-qz-1", region="450702", status="removed", version=3,
                                       numbers=[qinzhou.numbers["registered"]] + [
                                           new_number(i, "450702") for i in range(2, 5)]))
    from services.benefits.partners.tables import household_status_history
    from sqlalchemy import update
    async with qinzhou.app.state.sessionmaker.begin() as session:  # the removal took effect on 2020-05-11
        await session.execute(update(household_status_history).where(
            household_status_history.c.household_id == "hh-qz-1", household_status_history.c.status == "removed")
            .values(effective_on=dt.date(2020, 5, 11)))
    q2 = await claim(qinzhou.bank, "QC-2", 2020, 2, [("Q-1", interest("60000", 40))])
    assert q2["lines"][0]["status"] == "approved" and q2["lines"][0]["eligible_days"] == 40  # Apr 1 - May 10


async def test_exit_window_closing_mid_quarter(databases, tmp_path):
    numbers = [new_number(i, "450702") for i in range(31, 35)]
    # Exited 2018-05-15: Qinzhou keeps policies two years, until 2020-05-14.
    snapshot = household("hh-qz-9", region="450702", status="registered", numbers=numbers)
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for partners in make_partners(settings, [snapshot]):
        await issue(partners.bank, "W-1", numbers[0], "10000", "2018-01-01", "2020-12-31")
        await store(partners.app, {**snapshot, "version": 2, "status": "exited", "exit_date": "2018-05-15"})
        q2 = await claim(partners.bank, "W-2020Q2", 2020, 2, [("W-1", interest("10000", 44))])
        assert q2["lines"][0]["eligible_days"] == 44, q2  # 1 April - 14 May
        assert q2["lines"][0]["status"] == "approved"
        q3 = await claim(partners.bank, "W-2020Q3", 2019, 3, [("W-1", interest("10000", 92))])
        assert q3["lines"][0]["status"] == "approved"


@pytest.mark.parametrize("id_number", [FARMER_ID, UNKNOWN_ID], ids=["registered", "unknown"])
async def test_a_loan_dated_before_every_policy_pack_is_422_and_stores_nothing(partners, id_number):
    """Found by the API fuzzer in CI: an issuance dated 1978 asked for a pack that does not exist and
    answered 500. No rule can judge it; the bank's date is what is wrong."""
    body = {"report_id": "r-1978", "loan_id": "L-1978", "event": "issuance", "date": "1978-03-15",
            "id_number": id_number, "amount": "36000.00", "due_date": "2007-05-01", "purpose": "livestock"}
    response = await partners.bank.post("/v1/credit/loans", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "no_policy_in_force" and "1978-03-15" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "date"]
    # Nothing was kept: the same report_id with a date in force is a first report, not a conflicting resend.
    fixed = await partners.bank.post("/v1/credit/loans", json=body | {"date": "2019-11-15", "due_date": "2021-11-15"})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["loan"]["issued_on"] == "2019-11-15" and "replayed" not in fixed.json()


async def test_amounts_beyond_the_money_columns_are_422_not_a_database_error(partners):
    """Found by the API fuzzer: a trillion-yuan loan was stored on SQLite and overflowed NUMERIC(14, 2) on
    PostgreSQL (500); two in-range claim lines could add up past the claim total's column."""
    too_big = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r-big", "loan_id": "L-big", "event": "issuance", "date": "2019-11-15", "id_number": FARMER_ID,
        "amount": "1000000000000.00", "due_date": "2021-11-15", "purpose": "livestock"})
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["errors"][0]["loc"][-1] == "amount"
    largest = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r-max", "loan_id": "L-max", "event": "issuance", "date": "2019-11-15", "id_number": FARMER_ID,
        "amount": "999999999999.99", "due_date": "2021-11-15", "purpose": "livestock"})
    assert largest.status_code == 200 and largest.json()["loan"]["principal"] == "999999999999.99"
    summed = await partners.bank.post("/v1/credit/interest-claims", json={
        "claim_id": "C-big", "year": 2020, "quarter": 1,
        "lines": [{"loan_id": "L-max", "claimed_amount": "600000000000.00"},
                  {"loan_id": "L-other", "claimed_amount": "600000000000.00"}]})
    assert summed.status_code == 422, summed.text
    assert "999999999999.99" in summed.text
    loans = await partners.bank.post("/v1/credit/loans", json={
        "report_id": "r-big", "loan_id": "L-big", "event": "issuance", "date": "2019-11-15", "id_number": FARMER_ID,
        "amount": "36000.00", "due_date": "2021-11-15", "purpose": "livestock"})
    assert loans.status_code == 200 and "replayed" not in loans.json()  # the refused report left nothing behind
