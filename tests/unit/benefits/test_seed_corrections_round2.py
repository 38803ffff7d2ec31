"""Issue 11, item 1 (and the citations of item 3): each case computed by hand from the seed line it names.

Every expected amount below is read off the Chinese seed text (shared/policy/seeds/), not off
PROGRAMS.md or the packs.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.benefits.credit.service import decide
from services.benefits.engine import evaluate
from services.benefits.partners.lookup import FoundPerson
from services.benefits.rules.credit import LoanRequest, microloan_eligibility
from shared.policy import resolve_pack
from shared.snapshot import Household

from .helpers import base_household, person

NANKANG_2020 = dt.date(2020, 6, 30)
GUARANTEES = {name: True for name in ("food", "clothing", "compulsory_education", "basic_medical",
                                      "housing_safety", "drinking_water")}


def vocational(**student) -> dict:
    return base_household(members=[person(birth_date="2003-05-01", student={"stage": "vocational", **student})])


def failed(entitlement) -> list[str]:
    return [condition.condition for condition in entitlement.explanation if not condition.passed]


# --- a. vocational tuition, 001 L625 -------------------------------------------------------

@pytest.mark.parametrize(("entry_year", "major", "expected"), [
    # "2018年秋季以前入学学生享受原标准850元/生/学年": the intake is in autumn, so 2017 is before autumn 2018.
    (2017, "engineering", "850.00"), (2016, "arts_crafts", "850.00"),
    # Entered in autumn 2018 or later: 工科类专业2500元, 工艺美术类专业3000元, 农林、师范类专业1600元 (L625).
    (2018, "engineering", "2500.00"), (2019, "arts_crafts", "3000.00"), (2018, "agriculture_forestry_teaching", "1600.00"),
])
def test_vocational_tuition_by_entry_year_001_L625(entry_year, major, expected):
    result = evaluate(vocational(major_group=major, entry_year=entry_year), NANKANG_2020)
    found = result.entitlement("education.vocational_tuition", "a")
    assert (found.eligible, str(found.amount)) == (True, expected)
    assert found.source.model_dump() == {"seed": "001", "lines": "L625"}
    assert any(str(entry_year) in str(condition.value) for condition in found.explanation)


def test_vocational_tuition_unknown_entry_year_is_the_current_rate_and_says_so_001_L625():
    found = evaluate(vocational(major_group="finance"), NANKANG_2020).entitlement("education.vocational_tuition", "a")
    assert str(found.amount) == "2000.00"  # 财经类专业2000元/生/学年
    assert any("entry year unknown" in condition.condition for condition in found.explanation)


# --- b. Qinzhou: two years of support after exit, then a tracking year of guidance only, 003 L387 ----

QINZHOU_EXITED = {"region_code": "450702", "status": "exited", "exit_date": "2018-01-01"}


def test_qinzhou_microloan_not_granted_two_and_a_half_years_after_exit_003_L387():
    # Exit 2018-01-01; 2020-06-30 is 2.5 years later, in the tracking year: no policy, only guidance.
    snapshot = base_household(**QINZHOU_EXITED)
    result = evaluate(snapshot, NANKANG_2020)
    loan = result.entitlement("credit.microloan")
    assert loan.eligible is False and loan.amount == Decimal("0.00")
    assert "post-exit policy window open" in failed(loan)
    assert result.entitlement("health.insurance_premium", "a") is None  # the premium stops on the same day
    found = FoundPerson(snapshot["id"], "a", snapshot, snapshot["members"][0])
    renewal = decide(found, LoanRequest(Decimal(20000), 12, "livestock"), "renewal", NANKANG_2020)
    assert renewal.eligible is False and renewal.reasons == ["post_exit_window_closed"]


@pytest.mark.parametrize(("day", "open_"), [
    (dt.date(2019, 12, 31), True),   # last day of the 2 years of 继续扶持
    (dt.date(2020, 1, 1), False),    # first day of the year of 跟踪观察 (guidance only)
    (dt.date(2020, 12, 31), False),
])
def test_qinzhou_credit_and_premium_share_one_post_exit_window_003_L387(day, open_):
    household = Household.model_validate(base_household(**QINZHOU_EXITED))
    policy = resolve_pack("450702", day)
    renewal = microloan_eligibility(household, LoanRequest(Decimal(20000), 12, "livestock"), policy, day, "renewal")
    premium = evaluate(base_household(**QINZHOU_EXITED), day).entitlement("health.insurance_premium", "a")
    assert renewal.eligible is open_
    assert (premium is not None) is open_


# --- c. Shaoguan exit: the seed's own figure 约7365元, 002 L37 --------------------------------

@pytest.mark.parametrize(("income", "unmet"), [("7365.00", []), ("7364.99", ["income"]), ("7365.01", [])])
def test_shaoguan_exit_at_exactly_7365_passes_002_L37(income, unmet):
    household = base_household(region_code="440203", income={"year": 2018, "per_capita_net": income},
                               guarantees=GUARANTEES)
    assessment = evaluate(household, dt.date(2018, 6, 30)).assessment("exit_readiness")
    assert assessment.unmet == unmet
    assert assessment.source.model_dump() == {"seed": "002", "lines": "L37"}
    assert "7365" in assessment.explanation[0].condition


def test_shaoguan_exit_line_is_a_cited_parameter_not_a_recomputation_002_L37():
    policy = resolve_pack("440203", dt.date(2018, 6, 30))
    assert policy.param("exit_test.income_line_with_labour") == {2018: Decimal(7365)}
    assert policy.source("exit_test.income_line_with_labour") == {"seed": "002", "lines": "L37"}
    assert policy.param("village_exit.income_line") == {2018: Decimal(9820)}


# --- d. labour capacity is Qinzhou's credit condition (003 L367), not Nankang's (001 L733) ---------

NO_LABOUR = [person(birth_date="1950-01-01", labour_capacity="lost")]


def test_nankang_microloan_needs_no_labour_capacity_001_L733():
    loan = evaluate(base_household(members=NO_LABOUR), NANKANG_2020).entitlement("credit.microloan")
    assert (loan.eligible, str(loan.amount)) == (True, "50000.00")
    assert not any("labour" in condition.condition for condition in loan.explanation)
    assert loan.source.model_dump() == {"seed": "001", "lines": "L733, L741"}


def test_qinzhou_microloan_needs_labour_capacity_003_L367():
    day = dt.date(2018, 6, 30)
    loan = evaluate(base_household(region_code="450702", members=NO_LABOUR), day).entitlement("credit.microloan")
    assert loan.eligible is False and failed(loan) == ["household has labour capacity"]
    assert loan.source.model_dump() == {"seed": "003", "lines": "L367"}
    household = Household.model_validate(base_household(region_code="450702", members=NO_LABOUR))
    decision = microloan_eligibility(household, LoanRequest(Decimal(10000), 36, "livestock"),
                                     resolve_pack("450702", day), day)
    assert decision.reasons == ["no_labour_capacity"]


def test_labour_condition_is_set_only_in_the_qinzhou_pack_003_L367():
    assert resolve_pack("360703", NANKANG_2020).param("credit.labour_capacities") is None
    qinzhou = resolve_pack("450702", dt.date(2018, 6, 30))
    assert qinzhou.origin("credit.labour_capacities") == "qinzhou-2016"
    assert qinzhou.source("credit.labour_capacities") == {"seed": "003", "lines": "L367"}


# --- item 3: the insurance premium per pack and year ------------------------------------------

@pytest.mark.parametrize(("region", "day", "amount", "source"), [
    # 000 L243: "2016年个人筹资标准提高到150元/人"; L229: 个人缴费部分由财政给予全额补助.
    ("360702", dt.date(2016, 6, 30), "150.00", {"seed": "000", "lines": "L229, L243"}),
    # 001 L367 says the government buys the insurance, with no amount: the national 2020 figure (280).
    ("360703", NANKANG_2020, "280.00", {"seed": "001", "lines": "L367"}),
    # 002 L65: 政府全额资助; no amount in the seed: the national 2017 figure (180).
    ("440203", dt.date(2017, 6, 30), "180.00", {"seed": "002", "lines": "L65"}),
])
def test_insurance_premium_per_pack_and_year_000_L243(region, day, amount, source):
    premium = evaluate(base_household(region_code=region), day).entitlement("health.insurance_premium", "a")
    assert (premium.eligible, str(premium.amount), premium.source.model_dump()) == (True, amount, source)


# --- item 3: entitlements cite every line their amount comes from -----------------------------

def test_covid_unsold_cites_the_bamboo_rat_line_001_L214():
    household = base_household(production={"covid_unsold": {"vegetables_mu": 2, "bamboo_rats": 3}})
    found = evaluate(household, NANKANG_2020).entitlement("industry.covid_unsold")
    assert str(found.amount) == "790.00"  # 2 亩 x 350 (L208) + 3 竹鼠 x 30 (L214, no cap)
    assert found.source.model_dump() == {"seed": "001", "lines": "L208-L214"}


def test_deep_poverty_special_cites_the_villages_and_the_exclusion_001_L254_L260():
    village = {"code": "360703110201", "name": "花潭村", "township_code": "360703110", "township_name": "麻双乡",
               "is_poor_village": True, "is_deep_poverty_village": True}
    found = evaluate(base_household(village=village, production={"herbs_mu": 2}),
                     NANKANG_2020).entitlement("industry.deep_poverty_special")
    assert str(found.amount) == "4000.00"  # 麻双乡花潭村 中药材 2000元/亩 (L258)
    assert found.source.model_dump() == {"seed": "001", "lines": "L254-L260"}


def test_disability_living_subsidy_cites_the_line_with_60_001_L675():
    policy = resolve_pack("360703", NANKANG_2020)
    assert policy.source("disability.living_monthly") == {"seed": "001", "lines": "L673-L675"}


@pytest.mark.parametrize("facts, paid", [
    ({"members": [person(id="a", tekun="dispersed")], "categories": ["tekun_dispersed"]}, True),   # 五保
    ({"members": [person(id="a", dibao_covered=True)], "categories": ["dibao"], "dibao_class": "A2"}, True),  # class 1
    ({"members": [person(id="a", dibao_covered=True)], "categories": ["dibao"], "dibao_class": "B"}, True),   # class 2
    ({"members": [person(id="a", dibao_covered=True)], "categories": ["dibao"], "dibao_class": "C1"}, False),  # class 3
    ({"members": [person(id="a")]}, False),                       # registered, neither 五保 nor 低保
])
def test_qinzhou_premium_only_for_wubao_and_dibao_classes_1_and_2_003_L250(facts, paid):
    """对农村五保和农村低保一、二类对象参加城乡居民医保的个人缴费部分给予补贴 (003 L250): not every registered
    person. The amount is the national individual contribution of the year (220 in 2018; not in the seeds)."""
    day = dt.date(2018, 6, 30)
    found = evaluate(base_household(region_code="450702", **facts), day).entitlement("health.insurance_premium", "a")
    assert found is not None and found.eligible is paid
    assert str(found.amount) == ("220.00" if paid else "0.00")
    assert found.source is not None and found.source.seed == "003" and "L250" in found.source.lines
    if not paid:
        assert [c.condition for c in found.explanation if not c.passed] == [
            "a subsidised person: 特困 (五保) or 低保 class 1, class 2"]
