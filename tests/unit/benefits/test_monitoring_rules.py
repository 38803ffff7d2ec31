"""防止返贫监测 (issue 13), benefits rules: the monitoring range, rigid expenses, risk elimination and the
automatic lead, with values computed by hand. The national pack holds the 2021 range (6,000 yuan per person,
中农组发〔2021〕7号, outside the seeds); a province pack's figure wins over it."""
from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import pytest

from services.benefits.engine import evaluate
from services.benefits.monitoring.service import risk_detected_event
from services.benefits.rules.assessments import (IncomeObservation, above_range_run, elimination, range_line,
                                                 whole_months)
from services.benefits.rules.common import RuleContext
from shared.policy import POLICIES_DIR, PackRegistry, default_registry
from shared.snapshot import Household

from tests.unit.benefits.helpers import base_household

MID_2021 = dt.date(2021, 6, 30)
GUARANTEED = {"food": True, "clothing": True, "compulsory_education": True, "basic_medical": True,
              "housing_safety": True, "drinking_water": True}


def four_people(status: str = "exited", per_capita: str = "7000.00", year: int = 2021, **overrides) -> dict:
    members = [{"id": f"m{i}", "birth_date": "1980-01-01", "labour_capacity": "full"} for i in range(4)]
    return base_household(**{"status": status, "income": {"year": year, "per_capita_net": per_capita},
                             "members": members, "guarantees": dict(GUARANTEED), **overrides})


def range_of(household: dict, as_of: dt.date = MID_2021, packs=None):
    return evaluate(household, as_of, packs).assessment("monitoring_range")


# --- the range ----------------------------------------------------------------------------------

def test_income_just_below_the_2021_line_is_inside_and_at_the_line_is_outside():
    inside = range_of(four_people(per_capita="5999.99"))
    assert inside.result is True and inside.unmet == ["income_below_range"]
    income = inside.explanation[0]
    assert income.value == "5999.99" and income.passed is False
    assert "the 2021 range line 6000" in income.condition
    outside = range_of(four_people(per_capita="6000.00"))  # at the line: not below it
    assert outside.result is False and outside.unmet == []


def test_the_range_is_cited_to_the_guideline_outside_the_seeds():
    source = range_of(four_people(per_capita="5000.00")).source
    assert source.document == "中农组发〔2021〕7号" and source.default_not_in_seeds is True
    assert source.origin == "cn-national" and "6,000" in source.note


def test_rigid_expenses_clearly_exceeding_income_put_a_household_inside():
    # Household net income 7000 x 4 living members = 28000; share 1.0 -> above 28000 qualifies.
    equal = {"year": 2021, "medical": "20000.00", "schooling": "8000.00"}
    assert range_of(four_people(rigid_expenses=equal)).result is False  # 28000 is not above 28000
    above = {"year": 2021, "medical": "20000.00", "schooling": "8000.00", "accident": "0.01"}
    found = range_of(four_people(rigid_expenses=above))
    assert found.result is True and found.unmet == ["rigid_expense"]
    rigid = found.explanation[1]
    assert rigid.value == "28000.01" and rigid.passed is False
    assert "28000.00 = per-capita 7000.00 x 4 living members" in rigid.condition
    # A deceased member does not count: 7000 x 3 = 21000 < 28000 -> inside on the same expenses.
    household = four_people(rigid_expenses=equal)
    household["members"][3]["deceased"] = True
    assert range_of(household).unmet == ["rigid_expense"]


def test_risk_causes_name_income_and_each_rigid_item():
    household = four_people(per_capita="5000.00",
                            rigid_expenses={"year": 2021, "medical": "90000.00", "schooling": "1.00",
                                            "accident": "2.00"})
    found = range_of(household)
    assert found.unmet == ["income_below_range", "rigid_expense"]
    from services.benefits.rules.assessments import risk_causes
    assert risk_causes(Household.model_validate(household), found) == [
        "income_drop", "rigid_expense", "illness", "schooling", "accident"]


def test_a_year_without_a_figure_keeps_the_latest_earlier_one():
    policy = default_registry().resolve("360703", dt.date(2023, 6, 30))
    assert range_line(policy, 2021) == (Decimal(6000), 2021)
    assert range_line(policy, 2023) == (Decimal(6000), 2021)
    assert range_line(policy, 2020) == (Decimal(6000), 2021)  # before the first figure: the first one
    found = range_of(four_people(per_capita="5800.00", year=2023), dt.date(2023, 6, 30))
    assert "the range line of 2021 (no figure for 2023)" in found.explanation[0].condition


def test_who_is_judged_and_from_when():
    assert range_of(four_people(status="candidate", per_capita="100.00")).result is True
    assert range_of(four_people(status="monitored", per_capita="100.00")).result is True
    assert range_of(four_people(status="registered", per_capita="100.00")) is None  # assisted as poor already
    assert range_of(four_people(status="removed", per_capita="100.00")) is None
    # The 2020 demo date: the mechanism is not in force, nothing new is assessed.
    kinds = {a.kind for a in evaluate(four_people(per_capita="100.00", year=2019), dt.date(2020, 6, 30)).assessments}
    assert kinds == {"monitoring_risk"}


def test_a_province_pack_figure_wins_over_the_national_floor(tmp_path):
    """A province's own figure, as an office enters it (the number here is a test value, not a published one)."""
    for pack in POLICIES_DIR.glob("*.yaml"):
        shutil.copy(pack, tmp_path / pack.name)
    (tmp_path / "jiangxi-test-2021.yaml").write_text("""\
name: jiangxi-test-2021
version: "test"
region: "36"
valid_from: 2021-01-01
valid_to: null
extends: cn-national
parameters:
  monitoring.range_line:
    value: {2021: 6500}
    default_not_in_seeds: true
    note: "Test figure standing for the province's own range; not a published number."
""", encoding="utf-8")
    packs = PackRegistry.from_folder(tmp_path)
    household = four_people(per_capita="6200.00")
    national = range_of(household)
    provincial = range_of(household, packs=packs)
    assert national.result is False
    assert provincial.result is True and provincial.unmet == ["income_below_range"]
    assert "range line 6500" in provincial.explanation[0].condition
    assert provincial.source.origin == "jiangxi-test-2021"


# --- risk elimination ---------------------------------------------------------------------------

def history(*rows: tuple[str, int, str]) -> list[IncomeObservation]:
    return [IncomeObservation(dt.date.fromisoformat(day), year, Decimal(amount), version)
            for version, (day, year, amount) in enumerate(rows, 1)]


HISTORY = history(("2021-01-10", 2020, "5000.00"),   # below 6000: inside
                  ("2021-03-15", 2021, "6500.00"),   # above from here
                  ("2021-05-01", 2021, "7000.00"))


def judge(as_of: dt.date, observations=HISTORY, **overrides):
    household = Household.model_validate(four_people(status="monitored", **overrides))
    policy = default_registry().resolve(household.region_code, as_of)
    return elimination(RuleContext(household, policy, as_of, observations))


def test_whole_months():
    assert whole_months(dt.date(2021, 3, 15), dt.date(2021, 9, 14)) == 5
    assert whole_months(dt.date(2021, 3, 15), dt.date(2021, 9, 15)) == 6
    assert whole_months(dt.date(2021, 8, 31), dt.date(2022, 2, 28)) == 6
    assert whole_months(dt.date(2021, 1, 31), dt.date(2021, 6, 30)) == 5
    assert whole_months(dt.date(2021, 5, 1), dt.date(2021, 4, 1)) == 0


def test_elimination_is_refused_before_six_months():
    assessment, since, months = judge(dt.date(2021, 9, 14))
    assert (since, months) == (dt.date(2021, 3, 15), 5)
    assert assessment.result is False and assessment.unmet == ["income_above_range_months"]
    assert assessment.explanation[0].value == 5
    assert "at least 6 whole months" in assessment.explanation[0].condition


def test_elimination_after_six_months_with_everything_secured():
    assessment, since, months = judge(dt.date(2021, 9, 15))
    assert (since, months, assessment.result, assessment.unmet) == (dt.date(2021, 3, 15), 6, True, [])
    assert assessment.source.document == "中农组发〔2021〕7号"


def test_observations_after_as_of_do_not_count_and_a_fall_restarts_the_run():
    fallen = [*HISTORY, IncomeObservation(dt.date(2021, 7, 1), 2021, Decimal("5900.00"), 4)]
    assert above_range_run(default_registry().resolve("360703", MID_2021), fallen, dt.date(2021, 12, 31))[:2] == (None, 0)
    # Seen from 2021-06-30 the fall has not happened yet: above since 2021-03-15, 3 whole months.
    assert above_range_run(default_registry().resolve("360703", MID_2021), fallen, MID_2021)[:2] == \
        (dt.date(2021, 3, 15), 3)


def test_rigid_expenses_and_guarantees_must_be_resolved():
    guarantees = dict(GUARANTEED, drinking_water=None)
    assessment, *_ = judge(dt.date(2021, 12, 31), guarantees=guarantees,
                           rigid_expenses={"year": 2021, "medical": "30000.00"})  # above 7000 x 4 = 28000
    assert assessment.result is False
    assert assessment.unmet == ["rigid_expense_resolved", "drinking_water"]


def test_without_a_history_elimination_is_never_granted():
    result = evaluate(four_people(status="monitored"), dt.date(2021, 12, 31)).assessment("risk_elimination")
    assert result.result is False and result.unmet == ["income_above_range_months"]
    assert result.explanation[0].value == 0 and "no dated income history" in result.explanation[0].condition


# --- the automatic lead (pure part) ---------------------------------------------------------------

def as_stored(household: dict, as_of: dt.date = MID_2021) -> tuple[dict, dict]:
    snapshot = {**household, "id": "hh-lead", "version": 3}
    return snapshot, evaluate(snapshot, as_of).model_dump(mode="json")


@pytest.mark.parametrize("previous", [None, False])
def test_a_lead_when_the_range_turns_true(previous):
    snapshot, evaluation = as_stored(four_people(per_capita="5000.00"))
    event = risk_detected_event(snapshot, evaluation, previous, trigger="registry_change", actor="cadre-1")
    assert event.type == "monitoring.risk_detected" and event.subject == "household/hh-lead" and event.sequence == 3
    assert set(event.data) == {"household_id", "household_version", "as_of", "trigger", "risk_causes", "assessment"}
    assert event.data["as_of"] == "2021-06-30" and event.data["risk_causes"] == ["income_drop"]
    assert set(event.data["assessment"]) == {"kind", "result", "unmet", "explanation", "source"}
    assert event.data["assessment"]["unmet"] == ["income_below_range"]


def test_no_lead_while_inside_or_when_outside():
    snapshot, evaluation = as_stored(four_people(per_capita="5000.00"))
    assert risk_detected_event(snapshot, evaluation, True, trigger="registry_change", actor="x") is None
    snapshot, evaluation = as_stored(four_people(per_capita="9000.00"))
    assert risk_detected_event(snapshot, evaluation, None, trigger="threshold_change", actor="x") is None


# --- a yearly threshold change as an office publishes it -------------------------------------------

PROVINCE_2022 = """\
name: jiangxi-monitoring-test
version: "2022.1"
region: "36"
valid_from: 2022-01-01
valid_to: null
extends: cn-national
parameters:
  monitoring.range_line:
    value: {2021: 6000, 2022: 6300}
    default_not_in_seeds: true
    note: "Test figure for 2022 standing for the province's own; not a published number."
"""


def test_a_published_province_figure_for_the_next_year_is_valid_and_applies():
    from shared.policy.publication import validate_pack_text
    from shared.policy.resolution import load_pack_text

    registry = default_registry()
    checked = validate_pack_text(PROVINCE_2022, registry, effective_from=dt.date(2022, 1, 1))
    assert checked.problems == []
    published = registry.with_publication(load_pack_text(PROVINCE_2022, "test"), dt.date(2022, 1, 1))
    household = four_people(per_capita="6200.00", year=2022)
    assert range_of(household, dt.date(2022, 6, 30)).result is False  # the national 2021 figure, 6000
    found = range_of(household, dt.date(2022, 6, 30), published)
    assert found.result is True and "the 2022 range line 6300" in found.explanation[0].condition
    assert found.source.origin == "jiangxi-monitoring-test"
    # The table is restated whole: dropping 2021 is refused.
    dropped = PROVINCE_2022.replace("{2021: 6000, 2022: 6300}", "{2022: 6300}")
    refused = validate_pack_text(dropped, registry, effective_from=dt.date(2022, 1, 1)).problems
    assert [p.key for p in refused] == ["parameters.monitoring.range_line.value"]
