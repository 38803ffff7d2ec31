"""Just below, at and just above every threshold and cap."""
from __future__ import annotations

import datetime as dt

import pytest

from .helpers import amount_of, base_household, person


def production(**fields):
    return {"production": fields}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"crops_mu": "11.42"}, "7994.00"), ({"crops_mu": "11.43"}, "8000.00"), ({"crops_mu": "12"}, "8000.00"),
    ({"poultry": 9}, "0.00"), ({"poultry": 10}, "130.00"), ({"poultry": 11}, "143.00"),
    ({"rabbits": 9}, "0.00"), ({"rabbits": 10}, "300.00"),
    ({"beef_cattle": 2}, "1400.00"), ({"bee_boxes": 3}, "1200.00"), ({"camellia_tending_mu": 2}, "1200.00"),
])
def test_crop_livestock_thresholds_and_cap(fields, expected):
    assert amount_of(base_household(**production(**fields)), "industry.crop_livestock") == expected


def test_land_transfer():
    household = base_household(**production(land_rented_out={"farmland_mu": 1.5, "mountain_mu": 3}))
    assert amount_of(household, "industry.land_transfer_out") == "900.00"


@pytest.mark.parametrize(("machines", "expected"), [
    ([{"category": "t", "price": "19999.00", "national_subsidy": "0"}], "9999.50"),
    ([{"category": "t", "price": "20000.00", "national_subsidy": "0"}], "10000.00"),
    ([{"category": "t", "price": "20000.01", "national_subsidy": "0"}], "0.00"),
    ([{"category": "t", "price": "4000.00", "national_subsidy": "3000.00"}], "0.00"),  # never negative
    ([{"category": c, "price": "20000.00", "national_subsidy": "4000.00"} for c in "ab"], "12000.00"),
    ([{"category": c, "price": "20000.00", "national_subsidy": "0"} for c in "abcd"], "15000.00"),
    ([{"category": "a", "price": "10000.00", "national_subsidy": "0"},
      {"category": "a", "price": "12000.00", "national_subsidy": "0"}], "6000.00"),  # one per category
])
def test_machinery(machines, expected):
    assert amount_of(base_household(**production(machinery=machines)), "industry.machinery") == expected


@pytest.mark.parametrize(("mu", "expected"), [(9, "2700.00"), (10, "3000.00"), (11, "3000.00")])
def test_double_rice_oil_cap(mu, expected):
    assert amount_of(base_household(**production(double_rice_mu=mu)), "industry.double_rice_oil") == expected


LONGMU = {"code": "360703105202", "name": "石坑村", "township_code": "360703105", "township_name": "隆木乡",
          "is_poor_village": True, "is_deep_poverty_village": False}


@pytest.mark.parametrize(("heads", "special", "crop"), [
    (1, "800.00", "0.00"), (3, "3300.00", "0.00"), (4, "5000.00", "0.00"), (6, "5000.00", "0.00")])
def test_longmu_cattle_progressive_and_excluded(heads, special, crop):
    household = base_household(village=LONGMU, **production(beef_cattle=heads))
    assert amount_of(household, "industry.deep_poverty_special") == special
    assert amount_of(household, "industry.crop_livestock") == crop


def test_xincun_special_livestock_minimum():
    xincun = {**LONGMU, "name": "新村村"}
    assert amount_of(base_household(village=xincun, **production(special_livestock=9)), "industry.deep_poverty_special") is None
    assert amount_of(base_household(village=xincun, **production(special_livestock=10)), "industry.deep_poverty_special") == "300.00"


def test_huatan_herbs_excluded_from_crop_livestock():
    huatan = {"code": "360703110201", "name": "花潭村", "township_name": "麻双乡", "township_code": "360703110"}
    household = base_household(village=huatan, **production(herbs_mu=3, crops_mu=1))
    assert amount_of(household, "industry.deep_poverty_special") == "5000.00"
    assert amount_of(household, "industry.crop_livestock") == "700.00"


@pytest.mark.parametrize(("unsold", "expected"), [
    ({"poultry": 19}, "0.00"), ({"poultry": 20}, "100.00"), ({"vegetables_mu": 0.9}, "0.00"),
    ({"vegetables_mu": 1}, "350.00"), ({"vegetables_mu": 10}, "2500.00"),
    ({"vegetables_mu": 10, "bamboo_rats": 10}, "2800.00"), ({"honey_kg": 29}, "0.00"), ({"honey_kg": 30}, "600.00"),
])
def test_covid_unsold(unsold, expected):
    assert amount_of(base_household(**production(covid_unsold=unsold)), "industry.covid_unsold") == expected


def test_covid_unsold_only_2020():
    household = base_household(**production(covid_unsold={"vegetables_mu": 2}))
    assert amount_of(household, "industry.covid_unsold", as_of=dt.date(2020, 12, 31)) == "700.00"


def test_relocated_facility_caps():
    household = base_household(categories=["relocated"], relocation={"relocated": True, "moved_in": True},
                               **production(relocated_facility={"facility_agriculture_mu": 6, "reishi_large_bags": 400}))
    # facility 5 mu x 2000 = 10000 (cap 10000); reishi 300 x 30 = 9000 (cap 9000)
    assert amount_of(household, "industry.relocated_facility") == "19000.00"
    not_relocated = base_household(**production(relocated_facility={"herbs_mu": 1}))
    assert amount_of(not_relocated, "industry.relocated_facility") == "ineligible"


def job(**fields):
    return base_household(members=[person(employment=fields)])


@pytest.mark.parametrize(("fields", "expected"), [
    ({"monthly_wage": "2000", "contract_months": 5, "months_worked": 5}, "ineligible"),
    ({"monthly_wage": "2000", "contract_months": 6, "months_worked": 2}, "ineligible"),
    ({"monthly_wage": "2000", "contract_months": 6, "months_worked": 3}, "450.00"),
    ({"monthly_wage": "899.99", "contract_months": 6, "months_worked": 3}, "450.00"),
    ({"monthly_wage": "800", "contract_months": 6, "months_worked": 3}, "400.00"),
    ({"monthly_wage": "900", "contract_months": 6, "months_worked": 3}, "450.00"),
])
def test_job_subsidy(fields, expected):
    assert amount_of(job(**fields), "employment.job_subsidy", "a") == expected


@pytest.mark.parametrize(("wage", "expected"), [("1579.99", "ineligible"), ("1580", "300.00")])
def test_workshop_minimum_wage(wage, expected):
    assert amount_of(job(monthly_wage=wage, workshop=True), "employment.workshop_subsidy", "a") == expected


@pytest.mark.parametrize(("place", "deep", "expected"), [
    ("other_province", False, "500.00"), ("other_province", True, "600.00"),
    ("in_province_cross_county", False, "300.00"), ("in_province_cross_county", True, "400.00"),
    ("in_district_park", False, "600.00"), ("local", False, "ineligible")])
def test_transport(place, deep, expected):
    household = job(place=place)
    household["village"]["is_deep_poverty_village"] = deep
    assert amount_of(household, "employment.transport", "a") == expected


@pytest.mark.parametrize(("pay", "expected"), [("799.99", "799.99"), ("800", "800.00"), ("1200", "800.00")])
def test_public_post(pay, expected):
    assert amount_of(job(public_post={"monthly_pay": pay}), "employment.public_post", "a") == expected


def test_training_once_per_lifetime():
    fresh = base_household(members=[person(trainings=[{"name": "x", "days": 10, "certified": True, "year": 2020}])])
    assert amount_of(fresh, "employment.training", "a") == "800.00"
    paid = base_household(members=[person(trainings=[
        {"name": "x", "days": 10, "certified": True, "year": 2018, "subsidy_paid": True},
        {"name": "y", "days": 5, "certified": True, "year": 2020}])])
    assert amount_of(paid, "employment.training", "a") == "ineligible"
    uncertified = base_household(members=[person(trainings=[{"name": "x", "days": 10, "certified": False}])])
    assert amount_of(uncertified, "employment.training", "a") == "ineligible"


@pytest.mark.parametrize(("months", "expected"), [(2, "ineligible"), (3, "300.00")])
def test_job_referral(months, expected):
    assert amount_of(job(agency_referral=True, consecutive_months=months), "employment.job_referral", "a") == expected


@pytest.mark.parametrize(("months", "expected"), [(5, "ineligible"), (6, "5000.00")])
def test_startup(months, expected):
    assert amount_of(job(self_employed_months=months), "employment.startup", "a") == expected


@pytest.mark.parametrize(("contract", "year", "expected"), [(11, 2020, "ineligible"), (12, 2020, "700.00"), (12, 2019, "ineligible")])
def test_hiring_subsidy(contract, year, expected):
    household = job(key_enterprise_new_hire=True, contract_months=contract, hired_year=year)
    assert amount_of(household, "employment.hiring_subsidy", "a") == expected


@pytest.mark.parametrize(("birth", "expected"), [("2011-07-01", "3000.00"), ("2011-06-30", "ineligible")])
def test_child_rehab_age_boundary(birth, expected):
    household = base_household(members=[person(birth_date=birth, rehab_condition="cerebral_palsy")])
    assert amount_of(household, "health.child_rehab", "a") == expected


@pytest.mark.parametrize(("cost", "expected"), [("7999.98", "3999.99"), ("8000", "4000.00"), ("9000", "4000.00")])
def test_chronic_outpatient_cap(cost, expected):
    household = base_household(members=[person(health="chronic", chronic_outpatient_cost=cost)])
    assert amount_of(household, "health.chronic_outpatient", "a") == expected


@pytest.mark.parametrize(("housing", "categories", "status", "expected"), [
    ({"safety_grade": "D", "planned_work": "rebuild"}, [], "registered", "22000.00"),
    ({"safety_grade": "D", "planned_work": "rebuild"}, ["dibao"], "candidate", "20000.00"),
    ({"safety_grade": "D", "planned_work": "rebuild"}, ["marginal"], "monitored", "15000.00"),
    ({"safety_grade": "C", "planned_work": "repair"}, [], "registered", "5000.00"),
    ({"safety_grade": "C", "planned_work": "repair"}, ["marginal"], "monitored", "3500.00"),
    ({"safety_grade": "C", "planned_work": "rebuild"}, [], "registered", "ineligible"),
    ({"safety_grade": "D", "planned_work": "rebuild", "renovated": True}, [], "registered", "ineligible"),
    ({"no_house": True}, [], "registered", "22000.00"),
])
def test_renovation(housing, categories, status, expected):
    household = base_household(housing=housing, categories=categories, status=status)
    assert amount_of(household, "housing.renovation") == expected


@pytest.mark.parametrize(("water", "expected"), [
    ({"in_tap_coverage": False, "planned_well": "deep"}, "4000.00"),
    ({"in_tap_coverage": False, "planned_well": "hand_pump"}, "2000.00"),
    ({"in_tap_coverage": True, "planned_well": "deep"}, "ineligible"),
])
def test_water(water, expected):
    assert amount_of(base_household(water=water), "water.self_supply") == expected


def student(**fields):
    return base_household(members=[person(birth_date="2010-01-01", labour_capacity="none", student=fields)])


@pytest.mark.parametrize(("fields", "program", "status", "categories", "expected"), [
    ({"stage": "preschool"}, "education.preschool", "registered", [], "1500.00"),
    ({"stage": "preschool"}, "education.preschool", "candidate", ["dibao"], "1000.00"),
    ({"stage": "preschool"}, "education.preschool", "candidate", [], "ineligible"),
    ({"stage": "primary", "boarding": True}, "education.boarding", "registered", [], "1500.00"),
    ({"stage": "primary", "boarding": True}, "education.boarding", "candidate", ["dibao"], "1000.00"),
    ({"stage": "junior", "boarding": True, "special_school": True}, "education.boarding", "registered", [], "1950.00"),
    ({"stage": "junior"}, "education.non_boarding", "registered", [], "625.00"),
    ({"stage": "primary"}, "education.non_boarding", "candidate", ["dibao"], "ineligible"),
    ({"stage": "senior", "school": "南康第四中学"}, "education.senior_tuition", "registered", [], "540.00"),
    ({"stage": "senior"}, "education.senior_tuition", "registered", [], "800.00"),
    ({"stage": "senior"}, "education.senior_grant", "registered", [], "2500.00"),
    ({"stage": "senior", "need_level": 1}, "education.senior_grant", "candidate", ["dibao"], "1500.00"),
    ({"stage": "vocational", "major_group": "engineering"}, "education.vocational_tuition", "candidate", [], "2500.00"),
    ({"stage": "vocational", "year_of_study": 2}, "education.vocational_grant", "candidate", [], "2000.00"),
    ({"stage": "vocational", "year_of_study": 3}, "education.vocational_grant", "candidate", [], "ineligible"),
    ({"stage": "university", "admitted_this_year": True}, "education.university_travel", "registered", [], "500.00"),
    ({"stage": "university", "admitted_this_year": True}, "education.university_entry", "candidate", ["dibao"], "6000.00"),
    ({"stage": "university", "loan_requested": "9000"}, "education.student_loan", "registered", [], "8000.00"),
    ({"stage": "graduate", "loan_requested": "12000"}, "education.student_loan", "registered", [], "12000.00"),
])
def test_education(fields, program, status, categories, expected):
    household = student(**fields)
    household.update(status=status, categories=categories)
    assert amount_of(household, program, "a") == expected


@pytest.mark.parametrize(("dibao_class", "expected"), [("A1", "470.00"), ("A2", "420.00"), ("B", "350.00"), ("C1", "300.00"), ("C2", "260.00")])
def test_dibao_classes(dibao_class, expected):
    household = base_household(categories=["dibao"], dibao_class=dibao_class)
    assert amount_of(household, "safety_net.dibao") == expected


def test_dibao_ganzhou_standard_by_year():
    household = base_household(region_code="360702", categories=["dibao"], dibao_class="B")
    assert amount_of(household, "safety_net.dibao", as_of=dt.date(2019, 3, 1)) == "405.00"  # 4860 / 12


@pytest.mark.parametrize(("categories", "self_care", "expected"), [
    (["tekun_dispersed"], "able", "580.00"), (["tekun_concentrated"], "able", "685.00"),
    (["tekun_dispersed"], "full_loss", "2215.00"), (["tekun_dispersed"], "partial_loss", "1235.00")])
def test_tekun(categories, self_care, expected):
    household = base_household(categories=categories, members=[person(self_care=self_care)])
    assert amount_of(household, "safety_net.tekun", "a") == expected


@pytest.mark.parametrize(("birth", "status", "expected"), [
    ("2004-07-01", "registered", "230.00"),  # aged 15: no home care
    ("2004-06-30", "registered", "830.00"),  # aged 16
    ("2004-06-30", "exited", "230.00"),  # exited: no home care (window open for the rest)
])
def test_disability_home_care_age_and_status(birth, status, expected):
    household = base_household(status=status, exit_date="2019-12-01", members=[person(
        birth_date=birth, disability={"grade": 1, "kind": "physical"}, self_care="full_loss")])
    assert amount_of(household, "safety_net.disability", "a") == expected


def test_temporary_assistance_ceiling():
    household = base_household(disaster_this_year=True)
    assert amount_of(household, "safety_net.temporary_assistance") == "1410.00"


def test_post_exit_window_ganzhou_and_qinzhou():
    exited = base_household(status="exited", exit_date="2019-12-01", **production(crops_mu=1))
    assert amount_of(exited, "industry.crop_livestock") == "700.00"  # Ganzhou: policies kept until 2020
    qinzhou = base_household(region_code="450702", status="exited", exit_date="2016-07-01",  # a 低保 class-1 person:
                             categories=["dibao"], dibao_class="A1",  # Qinzhou subsidises only those (003 L250)
                             members=[person(employment={"monthly_wage": "2000"}, dibao_covered=True)])
    from services.benefits.engine import evaluate
    open_window = evaluate(qinzhou, dt.date(2018, 6, 30)).entitlement("health.insurance_premium", "a")
    closed = evaluate(qinzhou, dt.date(2018, 7, 1)).entitlement("health.insurance_premium", "a")
    assert open_window is not None and open_window.eligible
    assert closed is None


def test_removed_household_gets_nothing(farmer):
    farmer["status"] = "removed"
    from services.benefits.engine import evaluate
    result = evaluate(farmer, dt.date(2020, 6, 30))
    assert result.entitlements == [] and result.assessments == []
