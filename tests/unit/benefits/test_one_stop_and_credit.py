from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.policy import resolve_pack
from services.benefits.rules.village_exit import VillageStats, village_exit
from services.benefits.rules.credit import LoanRequest, interest_subsidy, microloan_eligibility
from services.benefits.rules.health import HospitalBill, PersonContext, one_stop_settlement
from shared.snapshot import Household

from .helpers import base_household

NANKANG = resolve_pack("360703", dt.date(2020, 6, 30))


def layers(result):
    return {layer.name: layer.amount for layer in result.layers}


def test_one_stop_nankang_worked_example():
    bill = HospitalBill(hospital_level=2, in_district=True, total_cost="20000", in_policy_cost="18000")
    result = one_stop_settlement(bill, PersonContext(registered=True), NANKANG, Decimal("0"))
    got = layers(result)
    assert got["basic_medical_insurance"] == Decimal("14400.00")  # no deductible at level 2, 80%
    assert got["critical_illness_insurance"] == Decimal("0.00")  # 3,600 left is under the 5,000 deductible
    assert result.patient_pays == Decimal("2000.00")  # topped up to an actual 90%
    assert result.effective_ratio == Decimal("0.9000")


def test_high_out_of_pocket_relief_above_10000():
    bill = HospitalBill(hospital_level=3, in_district=True, total_cost="100000", in_policy_cost="100000")
    result = one_stop_settlement(bill, PersonContext(registered=True), NANKANG, Decimal("9000"))
    before = result.patient_pays + layers(result)["high_out_of_pocket_relief"]
    assert layers(result)["high_out_of_pocket_relief"] == ((9000 + before - 10000) * Decimal("0.5")).quantize(Decimal("0.01"))


def test_not_covered_outside_district():
    bill = HospitalBill(hospital_level=1, in_district=False, total_cost="1000", in_policy_cost="1000")
    result = one_stop_settlement(bill, PersonContext(registered=True), NANKANG, Decimal("0"))
    assert not result.eligible and "special_relief_fund" not in layers(result)


def test_zero_bill():
    bill = HospitalBill(total_cost="0", in_policy_cost="0")
    result = one_stop_settlement(bill, PersonContext(registered=True), NANKANG, Decimal("0"))
    assert result.patient_pays == 0 and result.effective_ratio == 0


def household(**overrides):
    return Household.model_validate(base_household(**overrides))


@pytest.mark.parametrize(("amount", "region", "eligible"), [
    ("50000", "360703", True), ("50000.01", "360703", False), ("100000", "450702", True), ("100000.01", "450702", False)])
def test_microloan_amount_limits(amount, region, eligible):
    policy = resolve_pack(region, dt.date(2018, 6, 30) if region == "450702" else dt.date(2020, 6, 30))
    decision = microloan_eligibility(household(region_code=region), LoanRequest(Decimal(amount), 36, "livestock"),
                                     policy, dt.date(2020, 6, 30))
    assert decision.eligible is eligible
    assert decision.collateral_required is False
    if region == "450702" and eligible:
        assert decision.county_pays_interest


@pytest.mark.parametrize(("overrides", "request_args", "reason"), [
    ({"status": "candidate"}, ("10000", 36, "livestock"), "not_registered"),
    # no_labour_capacity is Qinzhou's condition (003 L367), not Nankang's: test_seed_corrections_round2.py
    ({}, ("10000", 37, "livestock"), "term_above_limit"),
    ({}, ("10000", 36, "wedding"), "purpose_excluded"),
])
def test_microloan_refusals(overrides, request_args, reason):
    amount, term, purpose = request_args
    decision = microloan_eligibility(household(**overrides), LoanRequest(Decimal(amount), term, purpose),
                                     NANKANG, dt.date(2020, 6, 30))
    assert not decision.eligible and reason in decision.reasons


def test_unknown_person_not_registered():
    decision = microloan_eligibility(None, LoanRequest(Decimal(1), 1, "x"), NANKANG, dt.date(2020, 6, 30))
    assert decision.reasons == ["not_registered"]


def test_exited_household_may_renew_within_the_window_only():
    # Qinzhou keeps policies two years after exit (003 L387); exited households extend or renew (001 L733).
    policy = resolve_pack("450702", dt.date(2020, 6, 30))
    ask = LoanRequest(Decimal(20000), 12, "livestock")
    within = household(status="exited", exit_date="2019-03-01", region_code="450702")
    assert microloan_eligibility(within, ask, policy, dt.date(2020, 6, 30), "renewal").eligible
    assert microloan_eligibility(within, ask, policy, dt.date(2020, 6, 30)).reasons == ["exited_household_new_loan"]
    closed = household(status="exited", exit_date="2017-01-01", region_code="450702")
    assert microloan_eligibility(closed, ask, policy, dt.date(2020, 6, 30), "extension").reasons == [
        "post_exit_window_closed"]


def test_interest_subsidy_full_and_partial_quarter():
    schedule = [(dt.date(2019, 1, 1), Decimal("36000"))]
    full = interest_subsidy(schedule, Decimal("0.0475"), (2020, 1))  # 91 days in Q1 2020
    assert full == (Decimal("36000") * Decimal("0.0475") / 360 * 91).quantize(Decimal("0.01"))
    half = interest_subsidy(schedule, Decimal("0.0475"), (2020, 1), [(dt.date(2020, 1, 1), dt.date(2020, 1, 31))])
    assert half == (Decimal("36000") * Decimal("0.0475") / 360 * 31).quantize(Decimal("0.01"))
    repaid = [(dt.date(2019, 1, 1), Decimal("36000")), (dt.date(2020, 2, 1), Decimal("0"))]
    assert interest_subsidy(repaid, Decimal("0.0475"), (2020, 1)) == half


@pytest.mark.parametrize(("poor", "population", "result"), [(2, 100, True), (3, 100, False)])
def test_qinzhou_village_exit_incidence(poor, population, result):
    policy = resolve_pack("450702", dt.date(2018, 6, 30))
    indicators = {name: True for name in policy.param("village_exit.indicators")}
    stats = VillageStats(code="450702001", year=2018, registered_population=population, poor_population=poor,
                         indicators=indicators)
    assert village_exit(stats, policy).result is result


# 002 L37 "约9820元": the seed's own figure is the line (tests/unit/benefits/test_village_exit.py).
@pytest.mark.parametrize(("income", "result"), [("9819.99", False), ("9820", True)])
def test_shaoguan_village_exit_60_percent(income, result):
    policy = resolve_pack("440203", dt.date(2018, 6, 30))
    stats = VillageStats(code="440203001", year=2018, registered_population=1000, poor_population=10,
                         per_capita_income=Decimal(income))
    assert village_exit(stats, policy).result is result
