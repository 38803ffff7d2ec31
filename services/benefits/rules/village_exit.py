"""assessment.village_exit: may a poor village leave the list (贫困村退出 / 出列)? Pure: no I/O.

Two standards are in the seeds; a pack states which one applies through its parameters:

* Qinzhou 十一有一低于 (003 L83): the eleven "haves" (`village_exit.indicators`) and a poverty
  incidence below 3% (`village_exit.max_incidence`).
* Shaoguan (002 L37): the village's per-capita disposable income at least 60% of that year's
  provincial rural per-capita income (`village_exit.income_share`), "约9820元" in 2018.

A pack that enables `assessment.village_exit` gets every condition whose parameters it has; a
pack without any of them has no village-exit standard (`has_standard` is False) and the caller
reports the village as not assessed instead of inventing a result.

The counts come from the caller (services/benefits/villages/service.py documents the counting
rule); this module only compares them with the pack, condition by condition, each with the
citation of the seed lines that hold its number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ConfigDict, Field

from services.benefits.rules.common import Assessment, Citation, Condition, citation_of, plain

PROGRAM = "assessment.village_exit"
STANDARD_PARAMETERS = ("village_exit.max_incidence", "village_exit.indicators", "village_exit.income_share")

#: The eleven haves as 003 L83 writes them, by the pack's indicator names.
INDICATOR_LABELS = {
    "featured_industry": "有特色产业", "housing_safety": "有住房保障", "basic_medical": "有基本医疗保障",
    "compulsory_education": "有义务教育保障", "road_access": "有路通村屯", "drinking_water": "有饮用水",
    "electricity": "有电用", "public_services": "有公共服务设施", "television": "有电视看",
    "collective_income": "有村集体经济收入", "good_village_committee": "有好的“两委”班子",
}


@dataclass(frozen=True)
class VillageStats:
    """What the rule needs to know about one village (see villages/service.py for the counting rule).

    registered_population: the village's 户籍 population from the registry's village record (the
    denominator of the incidence), None when the registry has not recorded it.
    counted_population: living members of the village's households that benefits holds (registered,
    returned, exited, monitored): the fallback denominator, a lower bound of the 户籍 population.
    poor_population: living members of the households not exited on the evaluation date.
    """

    code: str
    year: int
    registered_population: int | None
    poor_population: int
    per_capita_income: Decimal | None = None
    indicators: dict[str, bool | None] = field(default_factory=dict)
    counted_population: int = 0
    households: int = 0
    reported_incidence_pct: Decimal | None = None
    income_basis: str | None = None  # "village_record" | "households" | None


class CitedCondition(Condition):
    """A condition with the seed lines holding its number (the assessment's `source` is the standard's)."""
    model_config = ConfigDict(frozen=True)
    source: Citation | None = None


class VillageExitAssessment(Assessment):
    model_config = ConfigDict(frozen=True)
    explanation: list[CitedCondition] = Field(default_factory=list)
    standard: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)


def has_standard(policy) -> bool:
    return policy.enabled(PROGRAM) and any(policy.has(name) for name in STANDARD_PARAMETERS)


def _check(condition: str, value: Any, passed: bool, source: Citation | None) -> CitedCondition:
    return CitedCondition(condition=condition, value=plain(value), passed=bool(passed), source=source)


def _percent(fraction: Decimal) -> str:
    text = f"{(fraction * 100).quantize(Decimal('0.01'), ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") + "%"


def incidence_check(stats: VillageStats, max_incidence: Decimal, source: Citation | None) -> CitedCondition:
    """Poor people over the 户籍 population, compared exactly (3 of 100 is not below 3%).

    Without the registry's population the households benefits knows are the denominator: they are
    fewer than the village's people, so the incidence is an upper bound and a pass on it is a pass.
    A village benefits holds no household of falls back on the registry's reported percentage.
    """
    limit = _percent(max_incidence)
    label = f"贫困发生率低于{limit} / poverty incidence below {limit}"
    if stats.households == 0 and stats.counted_population == 0 and stats.poor_population == 0:
        if stats.reported_incidence_pct is None:
            return _check(f"{label}: 无该村农户数据，亦无上报发生率 / no household of the village and no reported "
                          "incidence", None, False, source)
        incidence = stats.reported_incidence_pct / 100
        return _check(f"{label}: 按村上报发生率 {stats.reported_incidence_pct}% / the village's reported incidence",
                      incidence.quantize(Decimal("0.0001")), incidence < max_incidence, source)
    if stats.registered_population:
        if stats.registered_population < stats.counted_population:
            return _check(f"{label}: 村户籍人口 {stats.registered_population} 少于其农户成员 {stats.counted_population}，"
                          f"数据不一致 / the village's registered population is below the "
                          f"{stats.counted_population} members of its households: inconsistent", None, False, source)
        denominator, basis = stats.registered_population, "户籍人口 / registered population"
    elif stats.counted_population:
        denominator = stats.counted_population
        basis = "未登记户籍人口，按已知农户成员（上限估计）/ population not recorded: households known (upper bound)"
    else:
        return _check(f"{label}: 人口不详 / population unknown", None, False, source)
    incidence = Decimal(stats.poor_population) / Decimal(denominator)
    passed = Decimal(stats.poor_population) < max_incidence * denominator
    return _check(f"{label}: {stats.poor_population} / {denominator} ({basis})",
                  incidence.quantize(Decimal("0.0001")), passed, source)


def indicator_checks(stats: VillageStats, names: list[str], source: Citation | None) -> list[tuple[str, CitedCondition]]:
    """Each have must be recorded as met; missing means not verified, which fails (like a household's guarantees)."""
    return [(name, _check(f"{INDICATOR_LABELS.get(name, name)} / village has {name.replace('_', ' ')}",
                          stats.indicators.get(name), stats.indicators.get(name) is True, source))
            for name in names]


def income_line(policy, year: int) -> tuple[Decimal | None, Citation | None, str]:
    """The year's threshold: the pack's own figure when it states one (`village_exit.income_line`,
    e.g. 9820 for 2018 as 002 L37 writes it), else share x provincial income in whole yuan, the
    precision the seed gives its "约" figures in (16,367 x 0.60 = 9,820.2 -> 9,820)."""
    lines = policy.param("village_exit.income_line", None) or {}
    if year in lines:
        return Decimal(lines[year]), citation_of(policy, "village_exit.income_line"), "stated by the pack"
    share = policy.param("village_exit.income_share")
    provincial = (policy.param("provincial_rural_income", None) or {}).get(year)
    if provincial is None:
        return None, citation_of(policy, "village_exit.income_share"), f"no provincial rural income for {year}"
    line = (provincial * share).quantize(Decimal("1"), ROUND_HALF_UP)
    return line, citation_of(policy, "village_exit.income_share"), f"{share} x {provincial}, whole yuan"


def income_check(stats: VillageStats, policy) -> CitedCondition:
    share = policy.param("village_exit.income_share")
    line, source, how = income_line(policy, stats.year)
    label = (f"村人均可支配收入不低于全省农村居民人均可支配收入{_percent(share)} / village per-capita income at least "
             f"{_percent(share)} of the provincial rural income ({stats.year}: {line if line is not None else '?'}; {how})")
    if stats.income_basis == "households":
        label += "; 按本村建档立卡户收入加权 / weighted mean of the village's registered households"
    passed = stats.per_capita_income is not None and line is not None and stats.per_capita_income >= line
    return _check(label, stats.per_capita_income, passed, source)


def village_exit(stats: VillageStats, policy) -> VillageExitAssessment:
    """Every condition of the pack's standard; `result` is True iff all pass. Call only when
    `has_standard(policy)`: a pack without a standard has nothing to assess."""
    checks: list[tuple[str, CitedCondition]] = []
    standard: list[str] = []
    if policy.has("village_exit.max_incidence"):
        standard.append("poverty_incidence")
        checks.append(("poverty_incidence", incidence_check(
            stats, policy.param("village_exit.max_incidence"), citation_of(policy, "village_exit.max_incidence"))))
    if policy.has("village_exit.indicators"):
        standard.append("indicators")
        checks += indicator_checks(stats, list(policy.param("village_exit.indicators")),
                                   citation_of(policy, "village_exit.indicators"))
    if policy.has("village_exit.income_share"):
        standard.append("income_share")
        checks.append(("income", income_check(stats, policy)))
    unmet = [criterion for criterion, check in checks if not check.passed]
    inputs = {"year": stats.year, "households": stats.households, "poor_population": stats.poor_population,
              "registered_population": stats.registered_population,
              "counted_population": stats.counted_population,
              "reported_incidence_pct": plain(stats.reported_incidence_pct),
              "per_capita_income": plain(stats.per_capita_income), "income_basis": stats.income_basis}
    return VillageExitAssessment(kind="village_exit", result=not unmet, unmet=unmet,
                                 explanation=[check for _, check in checks],
                                 source=checks[0][1].source if checks else None, standard=standard, inputs=inputs)
