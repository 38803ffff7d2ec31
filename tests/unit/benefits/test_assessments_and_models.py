from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.benefits.engine import evaluate
from shared.money import ZERO, yuan
from shared.snapshot import Household, HouseholdCreate

from .helpers import base_household, person

GUARANTEES = {name: True for name in ("food", "clothing", "compulsory_education", "basic_medical",
                                      "housing_safety", "drinking_water")}


def assessment(household, kind, day=dt.date(2020, 6, 30)):
    return evaluate(household, day).assessment(kind)


@pytest.mark.parametrize(("income", "result"), [("3217.99", False), ("3218.00", False), ("3218.01", True)])
def test_exit_income_strictly_above_line(income, result):
    household = base_household(income={"year": 2019, "per_capita_net": income}, guarantees=GUARANTEES)
    assert assessment(household, "exit_readiness").result is result


def test_exit_unverified_guarantee_is_unmet():
    household = base_household(guarantees={**GUARANTEES, "drinking_water": None})
    assert assessment(household, "exit_readiness").unmet == ["drinking_water"]


def test_relocated_must_move_in():
    household = base_household(guarantees=GUARANTEES, relocation={"relocated": True, "moved_in": False})
    assert assessment(household, "exit_readiness").unmet == ["relocation_moved_in"]


@pytest.mark.parametrize(("income", "labour", "categories", "unmet"), [
    ("7364.00", "full", [], ["income"]), ("7365.15", "full", [], []),
    ("1000", "lost", [], ["dibao_enrolment"]), ("1000", "lost", ["dibao"], [])])
def test_shaoguan_exit(income, labour, categories, unmet):
    household = base_household(region_code="440203", income={"year": 2018, "per_capita_net": income},
                               guarantees=GUARANTEES, categories=categories,
                               members=[person(labour_capacity=labour)])
    assert assessment(household, "exit_readiness", dt.date(2018, 6, 30)).unmet == unmet


def test_qinzhou_eight_haves():
    household = base_household(region_code="450702", guarantees={**GUARANTEES, "income_source": True,
                               "road_access": True, "electricity": True, "television": False})
    assert assessment(household, "exit_readiness", dt.date(2018, 6, 30)).unmet == ["television"]


@pytest.mark.parametrize(("region", "income", "result"), [
    ("440203", "3999.99", True), ("440203", "4000.00", False), ("360703", "3217.99", True), ("360703", "3218.00", False)])
def test_identification_lines(region, income, result):
    household = base_household(region_code=region, status="candidate",
                               income={"year": 2019 if region == "360703" else 2017, "per_capita_net": income})
    day = dt.date(2020, 6, 30) if region == "360703" else dt.date(2017, 6, 30)
    assert assessment(household, "identification", day).result is result


@pytest.mark.parametrize(("income", "oop", "flags"), [
    ("4826.99", None, ["income_near_line"]), ("4827.00", None, []), ("9000", "10000.01", ["medical_out_of_pocket"]),
    ("9000", "10000.00", [])])
def test_monitoring_thresholds(income, oop, flags):
    household = base_household(status="monitored", categories=["marginal"], medical_out_of_pocket_ytd=oop,
                               income={"year": 2019, "per_capita_net": income})
    found = assessment(household, "monitoring_risk")
    assert found.unmet == flags and found.result is bool(flags)


def test_lost_only_earner():
    household = base_household(status="exited", exit_date="2019-01-01", income={"year": 2019, "per_capita_net": "9000"},
                               members=[person(id="a", deceased=True, employment={"monthly_wage": "3000"}),
                                        person(id="b", labour_capacity="weak")])
    assert assessment(household, "monitoring_risk").unmet == ["lost_only_earner"]


def test_money_helpers():
    assert yuan("1.005") == Decimal("1.01") and yuan(2) == Decimal("2.00") and yuan(0.1) == Decimal("0.10")
    assert ZERO == Decimal("0.00")
    with pytest.raises(ValueError):
        yuan("NaN")
    with pytest.raises(ValueError):
        yuan(True)


def test_snapshot_money_serialises_as_string_and_minimal_household_validates():
    household = Household.model_validate({"region_code": "360703", "income": {"year": 2019, "per_capita_net": 2800}})
    assert household.model_dump(mode="json")["income"]["per_capita_net"] == "2800.00"
    assert household.members == [] and household.production.poultry == 0 and household.guarantees.food is None


def test_default_model_ignores_unknown_fields_create_model_forbids_them_recursively(farmer):
    farmer["members"][0]["favourite_colour"] = "red"
    Household.model_validate(farmer)
    body = {k: v for k, v in farmer.items() if k not in ("id", "version")}
    with pytest.raises(ValidationError) as error:
        HouseholdCreate.model_validate(body)
    assert error.value.errors()[0]["loc"] == ("members", 0, "favourite_colour")
    del body["members"][0]["favourite_colour"]
    for member in body["members"]:
        member.pop("id")
    HouseholdCreate.model_validate(body)
    with pytest.raises(ValidationError):
        HouseholdCreate.model_validate({**body, "id": "x"})


def test_household_schema_has_example():
    assert Household.model_json_schema()["examples"][0]["id"] == "hh-nk-0001"
