"""``evaluate_json`` is exactly ``evaluate(...).model_dump(mode="json")``: same dict, same key order, money
as the same text, over generated, demo and worked-example households on several policy dates and packs."""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.datagen import generate_household
from jingzhun_cli.demo import demo_households
from services.benefits.engine import evaluate, evaluate_json
from services.benefits.rules.assessments import IncomeObservation
from services.benefits.rules.common import Condition, Entitlement, cond, light_results
from shared.policy import default_registry

from .conftest import EXAMPLES_DIR

REGISTRY = default_registry()
# Before, inside and after the packs' periods; 2021+ has the monitoring range and risk elimination.
DATES = [dt.date(2017, 3, 1), dt.date(2019, 9, 1), dt.date(2020, 6, 30), dt.date(2020, 12, 31),
         dt.date(2021, 6, 30), dt.date(2022, 1, 15)]
# nankang, ganzhou, jiangxi, shaoguan, qinzhou and a region only the national pack covers.
REGIONS = ["360703", "360702", "360123", "440203", "450702", "110101"]


def same(household: dict, as_of: dt.date, income_history=None) -> dict:
    old = evaluate(household, as_of, REGISTRY, income_history).model_dump(mode="json")
    new = evaluate_json(household, as_of, REGISTRY, income_history)
    assert new == old
    # Key order too (the stored explanation and the events' canonical bytes come from these dicts).
    assert json.dumps(new, ensure_ascii=False) == json.dumps(old, ensure_ascii=False)
    return new


def history_for(household: dict, as_of: dt.date, rng: random.Random) -> list[IncomeObservation]:
    observations = []
    for months_back in sorted(rng.sample(range(1, 30), k=rng.randint(0, 5)), reverse=True):
        day = as_of - dt.timedelta(days=30 * months_back)
        observations.append(IncomeObservation(observed_on=day, income_year=day.year - 1,
                                              per_capita_net=Decimal(rng.randint(3000, 12000)),
                                              household_version=len(observations) + 1))
    return observations


def varied(rng: random.Random, index: int) -> dict:
    """A generated household with the edges the generator rarely reaches."""
    household = generate_household(rng, index, region=rng.choice(REGIONS))
    roll = rng.random()
    if roll < 0.1:
        household["housing"].update(no_house=True, safety_grade=None, planned_work=None)
    elif roll < 0.2:
        household["members"][-1]["deceased"] = True
    elif roll < 0.3:
        for member in household["members"]:
            member.pop("id", None)  # what-if evaluation: members named by position
    elif roll < 0.4:
        household["income"] = None
    return household


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), as_of=st.sampled_from(DATES))
def test_generated_households_give_the_same_json(seed, as_of):
    rng = random.Random(seed)
    household = varied(rng, seed % 10_000)
    history = history_for(household, as_of, rng) if household["status"] == "monitored" else None
    same(household, as_of, history)


@pytest.mark.parametrize("as_of", [dt.date(2020, 6, 30), dt.date(2021, 6, 30)])
def test_demo_district_gives_the_same_json(as_of):
    for number, (household_id, body) in enumerate(demo_households(200)):
        if number % 2:  # every other one keeps the run short; both dates together cover all 200
            continue
        same({**body, "id": household_id, "version": 1}, as_of)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.json")), ids=lambda path: path.stem)
def test_worked_examples_give_the_same_json(path):
    example = json.loads(path.read_text(encoding="utf-8"))
    for as_of in [dt.date.fromisoformat(example["as_of"]), *DATES]:
        found = same(example["household"], as_of)
    assert found["policy"]["as_of"] == DATES[-1].isoformat()


def test_removed_household_and_money_text():
    rng = random.Random(11)
    household = generate_household(rng, 1)
    household["status"] = "removed"
    assert same(household, dt.date(2020, 6, 30))["entitlements"] == []
    household["status"] = "registered"
    result = same(household, dt.date(2020, 6, 30))
    amounts = [e["amount"] for e in result["entitlements"]]
    assert amounts and all(isinstance(a, str) and a.count(".") == 1 and len(a.split(".")[1]) == 2 for a in amounts)


def test_light_results_are_only_on_inside_evaluate_json():
    """Every other caller of the rules still gets the pydantic models (the API's schema)."""
    assert isinstance(cond("x", Decimal("1.5"), True), Condition)
    evaluate_json(generate_household(random.Random(3), 3), dt.date(2020, 6, 30), REGISTRY)
    assert light_results().get() is False
    assert isinstance(cond("x", 1, True), Condition)
    result = evaluate(generate_household(random.Random(3), 3), dt.date(2020, 6, 30), REGISTRY)
    assert all(isinstance(e, Entitlement) for e in result.entitlements)
    assert all(isinstance(c, Condition) for e in result.entitlements for c in e.explanation)


def test_rules_mutating_nothing_shared():
    """Evaluating twice gives the same dict (no plain object or cached citation is shared mutably)."""
    household = generate_household(random.Random(5), 5)
    first = evaluate_json(household, dt.date(2020, 6, 30), REGISTRY)
    first_copy = copy.deepcopy(first)
    for entitlement in first["entitlements"]:
        if entitlement["source"]:
            entitlement["source"]["lines"] = "changed"
        entitlement["explanation"].clear()
    assert evaluate_json(household, dt.date(2020, 6, 30), REGISTRY) == first_copy
