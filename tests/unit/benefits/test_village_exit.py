"""assessment.village_exit, by hand from the seed lines.

Qinzhou 003 L83: 贫困村脱帽按照“十一有一低于”，即有特色产业、有住房保障、有基本医疗保障、有义务教育保障、有路通村屯、
有饮用水、有电用、有公共服务设施、有电视看、有村集体经济收入、有好的“两委”班子、贫困发生率低于3%执行。
Shaoguan 002 L37: 确保相对贫困村人均可支配收入不低于当年全省农村居民人均可支配收入60%（约9820元）。
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.benefits.rules.village_exit import INDICATOR_LABELS, VillageStats, has_standard, village_exit
from services.benefits.villages.service import indicators_of, is_poor_on
from shared.policy import resolve_pack

QINZHOU = resolve_pack("450702100200", dt.date(2018, 6, 30))
SHAOGUAN = resolve_pack("440203100200", dt.date(2018, 6, 30))
ALL_HAVES = {name: True for name in INDICATOR_LABELS}


def qinzhou(poor: int, population: int | None, **changes) -> VillageStats:
    values = dict(code="450702100200", year=2018, registered_population=population, poor_population=poor,
                  indicators=dict(ALL_HAVES), counted_population=poor + 10, households=5)
    values.update(changes)
    return VillageStats(**values)


def test_the_eleven_haves_are_the_seeds_eleven():
    """003 L83 names eleven 'haves' and one 'below'; the pack lists the same eleven."""
    seed_line = open("shared/policy/seeds/003_bdcec0dc1d674f39.txt", encoding="utf-8").read().splitlines()[82]
    assert len(INDICATOR_LABELS) == 11 == len(QINZHOU.param("village_exit.indicators"))
    assert set(QINZHOU.param("village_exit.indicators")) == set(INDICATOR_LABELS)
    for label in INDICATOR_LABELS.values():
        assert label in seed_line, label
    assert "贫困发生率低于3%" in seed_line


@pytest.mark.parametrize(("poor", "population", "result", "value"), [
    (29, 1000, True, "0.0290"),   # 2.9% < 3%
    (30, 1000, False, "0.0300"),  # exactly 3% is not "低于3%"
    (2, 100, True, "0.0200"),
])
def test_qinzhou_incidence_below_3_percent_003_L83(poor, population, result, value):
    assessment = village_exit(qinzhou(poor, population), QINZHOU)
    assert assessment.result is result
    incidence = assessment.explanation[0]
    assert incidence.value == value and incidence.passed is result
    assert incidence.source.model_dump() == {"seed": "003", "lines": "L83"}
    assert assessment.unmet == ([] if result else ["poverty_incidence"])
    assert assessment.standard == ["poverty_incidence", "indicators"]


def test_qinzhou_every_have_is_a_cited_condition_and_unverified_fails():
    """A have the registry left empty (None) is not verified: the village does not pass on it."""
    indicators = {**ALL_HAVES, "good_village_committee": None, "collective_income": False}
    assessment = village_exit(qinzhou(1, 1000, indicators=indicators), QINZHOU)
    assert assessment.result is False
    assert assessment.unmet == ["collective_income", "good_village_committee"]
    assert len(assessment.explanation) == 12
    assert all(check.source.model_dump() == {"seed": "003", "lines": "L83"} for check in assessment.explanation)
    committee = next(c for c in assessment.explanation if "两委" in c.condition)
    assert committee.value is None and committee.passed is False


def test_qinzhou_without_registered_population_uses_the_households_as_an_upper_bound():
    # 1 poor of the 40 people benefits knows: 2.5% < 3% on the lower-bound denominator passes.
    passes = village_exit(qinzhou(1, None, counted_population=40), QINZHOU)
    assert passes.result is True and passes.explanation[0].value == "0.0250"
    assert "upper bound" in passes.explanation[0].condition
    # 2 of 40 = 5%: fails; with the record's 户籍 population of 100 it would be 2% and pass.
    assert village_exit(qinzhou(2, None, counted_population=40), QINZHOU).result is False
    assert village_exit(qinzhou(2, 100, counted_population=40), QINZHOU).result is True


def test_qinzhou_inconsistent_or_missing_counts_fail_with_the_reason():
    inconsistent = village_exit(qinzhou(1, 30, counted_population=40), QINZHOU)
    assert inconsistent.result is False and "inconsistent" in inconsistent.explanation[0].condition
    nothing = village_exit(qinzhou(0, 100, households=0, counted_population=0), QINZHOU)
    assert nothing.result is False and "no household" in nothing.explanation[0].condition
    reported = village_exit(qinzhou(0, 100, households=0, counted_population=0,
                                    reported_incidence_pct=Decimal("2.5")), QINZHOU)
    assert reported.result is True and reported.explanation[0].value == "0.0250"


@pytest.mark.parametrize(("income", "result"), [("9819.99", False), ("9820", True), ("9820.00", True)])
def test_shaoguan_village_income_at_the_seeds_9820_passes_002_L37(income, result):
    """002 L37: 不低于 ... 60%（约9820元）: 9,820 itself passes (not 16,367 x 0.6 = 9,820.20)."""
    stats = VillageStats(code="440203100200", year=2018, registered_population=1000, poor_population=10,
                         per_capita_income=Decimal(income), households=3, income_basis="households")
    assessment = village_exit(stats, SHAOGUAN)
    assert assessment.result is result
    assert assessment.standard == ["income_share"] and len(assessment.explanation) == 1
    check = assessment.explanation[0]
    assert check.value == income and "9820" in check.condition
    assert check.source.model_dump() == {"seed": "002", "lines": "L37"}
    assert assessment.unmet == ([] if result else ["income"])


def test_shaoguan_2017_line_is_60_percent_of_the_provincial_income_in_whole_yuan():
    # 2017: 15,780 x 0.60 = 9,468 (provincial figure default_not_in_seeds, share cited 002 L37).
    stats = VillageStats(code="440203100200", year=2017, registered_population=None, poor_population=0,
                         per_capita_income=Decimal("9468"), households=1)
    assert village_exit(stats, SHAOGUAN).result is True
    assert village_exit(VillageStats(**{**stats.__dict__, "per_capita_income": Decimal("9467.99")}),
                        SHAOGUAN).result is False
    unknown = village_exit(VillageStats(**{**stats.__dict__, "per_capita_income": None}), SHAOGUAN)
    assert unknown.result is False and unknown.explanation[0].value is None


def test_packs_without_a_village_exit_standard():
    assert has_standard(QINZHOU) and has_standard(SHAOGUAN)
    assert not has_standard(resolve_pack("360703100200", dt.date(2020, 6, 30)))  # Nankang: none in 000/001
    assert not has_standard(resolve_pack("450702100200", dt.date(2026, 12, 3)))  # Qinzhou lapsed: national only


def test_counting_rule_poor_is_not_exited_on_the_date():
    day = dt.date(2019, 6, 30)
    assert is_poor_on("registered", {}, day) and is_poor_on("returned", {}, day)
    assert not is_poor_on("exited", {"exit_date": "2019-01-10"}, day)
    assert is_poor_on("exited", {"exit_date": "2019-12-10"}, day)  # exited after the evaluation date
    assert not is_poor_on("monitored", {"categories": ["marginal"], "exit_date": None}, day)
    assert indicators_of({"indicators": {"housing_security": True, "good_committees": False,
                                         "poverty_incidence_pct": "2.1"}}) == {
        "housing_safety": True, "good_village_committee": False}
