"""Assessments: exit readiness, identification, village exit, monitoring risk (PROGRAMS.md §1), and from
2021 the monitoring range and risk elimination of 防止返贫动态监测 (docs/monitoring.md)."""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from shared.money import ZERO
from shared.snapshot import Household
from services.benefits.rules.common import (
    Assessment, Citation, Condition, DocumentCitation, RuleContext, cite, citation_of, citation_span,
    cond, document_citation, is_exited_household, is_marginal_household,
)
from services.benefits.rules.common import assessment as make_assessment

LABOUR = ("full", "skilled", "weak")


def evaluate(ctx: RuleContext) -> list[Assessment]:
    household = ctx.household
    results: list[Assessment] = []
    if ctx.enabled("assessment.exit_readiness") and household.status in ("registered", "returned"):
        results.append(exit_readiness(ctx))
    if ctx.enabled("assessment.identification") and household.status == "candidate":
        results.append(identification(ctx))
    if ctx.enabled("assessment.monitoring_risk") and (is_exited_household(household) or is_marginal_household(household)):
        results.append(monitoring_risk(ctx))
    if monitoring_in_force(ctx.policy, ctx.as_of):
        if ctx.enabled("assessment.monitoring_range") and household.status in MONITORED_POPULATION:
            results.append(monitoring_range(ctx))
        if ctx.enabled("assessment.risk_elimination") and household.status == "monitored":
            results.append(risk_elimination(ctx))
    return results


def poverty_line(policy, year: int) -> Decimal | None:
    lines = policy.param("poverty_line")
    return lines.get(year)


def _income(household: Household) -> tuple[Decimal | None, int | None]:
    if household.income is None:
        return None, None
    return household.income.per_capita_net, household.income.year


def _assessment(kind: str, checks: list[tuple[str, Condition]], source: Citation | None) -> Assessment:
    unmet = [criterion for criterion, check in checks if not check.passed]
    return make_assessment(kind, result=not unmet, unmet=unmet, explanation=[check for _, check in checks], source=source)


def _guarantee_checks(ctx: RuleContext) -> list[tuple[str, Condition]]:
    guarantees = ctx.household.guarantees
    return [(name, cond(f"{name} guaranteed (visited and verified)", getattr(guarantees, name),
                        getattr(guarantees, name) is True))
            for name in ctx.param("exit_test.guarantees")]


def _relocation_check(ctx: RuleContext) -> list[tuple[str, Condition]]:
    relocation = ctx.household.relocation
    if not (relocation.relocated and ctx.param("exit_test.relocated_must_move_in", False)):
        return []
    return [("relocation_moved_in", cond("relocated household has moved in (001 L929)", relocation.moved_in,
                                         relocation.moved_in))]


def exit_readiness(ctx: RuleContext) -> Assessment:
    variant = ctx.param("exit_test.variant")
    if variant == "shaoguan":
        income_checks = _shaoguan_income_checks(ctx)
    else:
        income_checks = [_above_poverty_line_check(ctx)]
    # The pack's exit test and its lines (002 L37, 003 L81, 004 L22), not a constant per variant.
    source = citation_span(ctx.policy, "exit_test.variant", "exit_test.guarantees", "exit_test.income_line_with_labour",
                           "exit_test.income_share_with_labour")
    checks = income_checks + _guarantee_checks(ctx) + _relocation_check(ctx)
    return _assessment("exit_readiness", checks, source)


def _above_poverty_line_check(ctx: RuleContext) -> tuple[str, Condition]:
    income, year = _income(ctx.household)
    line = poverty_line(ctx.policy, year) if year is not None else None
    passed = income is not None and line is not None and income > line
    return ("income", cond(f"per-capita net income above the {year} poverty line {line}", income, passed))


def _shaoguan_income_checks(ctx: RuleContext) -> list[tuple[str, Condition]]:
    household = ctx.household
    has_labour = any(person.labour_capacity in LABOUR for person in household.living_members())
    if not has_labour:
        enrolled = "dibao" in household.categories
        return [("dibao_enrolment", cond("household without labour is enrolled in 低保", enrolled, enrolled))]
    income, year = _income(household)
    line, how = shaoguan_income_line(ctx.policy, year)
    # 不低于 (not below): a household exactly at the line passes.
    passed = income is not None and line is not None and income >= line
    return [("income", cond(f"income >= {how} of {year} ({line})", income, passed))]


def shaoguan_income_line(policy, year: int | None) -> tuple[Decimal | None, str]:
    """The seed's own figure for the year (约7365元 for 2018, 002 L37), else share x provincial income."""
    share = policy.param("exit_test.income_share_with_labour")
    if year is None:
        return None, f"{share} x provincial rural income"
    stated = policy.param("exit_test.income_line_with_labour", None) or {}
    if year in stated:
        return stated[year], f"the plan's figure ({share} x provincial rural income, 002 L37)"
    provincial = policy.param("provincial_rural_income").get(year)
    return (provincial * share if provincial is not None else None), f"{share} x provincial rural income"


def identification(ctx: RuleContext) -> Assessment:
    income, year = _income(ctx.household)
    fixed = ctx.param("identification.income_line", None)
    line = fixed if fixed is not None else (poverty_line(ctx.policy, year) if year is not None else None)
    passed = income is not None and line is not None and income < line
    check = cond(f"per-capita income below the entry line {line}", income, passed)
    source = citation_of(ctx.policy, "identification.income_line", cite("004", "L22"))
    return _assessment("identification", [("income_below_line", check)], source)


def monitoring_risk(ctx: RuleContext) -> Assessment:
    """result = at risk (any flag raised); `unmet` lists the raised flags."""
    household = ctx.household
    income, year = _income(household)
    line = poverty_line(ctx.policy, year) if year is not None else None
    multiplier = ctx.param("monitoring.income_multiplier")
    near_line = income is not None and line is not None and income < line * multiplier
    oop_threshold = ctx.param("monitoring.medical_oop_threshold")
    oop = household.medical_out_of_pocket_ytd or ZERO
    flags = [
        ("income_near_line", cond(f"income below {multiplier} x poverty line", income, not near_line)),
        ("medical_out_of_pocket", cond(f"medical out-of-pocket above {oop_threshold}", oop, not oop > oop_threshold)),
        ("disaster", cond("hit by disaster this year", household.disaster_this_year, not household.disaster_this_year)),
        ("lost_only_earner", cond("lost the only wage earner", lost_only_earner(household), not lost_only_earner(household))),
    ]
    raised = [name for name, check in flags if not check.passed]
    return make_assessment("monitoring_risk", result=bool(raised), unmet=raised,
                      explanation=[check for _, check in flags],
                      source=citation_of(ctx.policy, "monitoring.medical_oop_threshold"))


def lost_only_earner(household: Household) -> bool:
    earners_lost = any(person.deceased and person.employment is not None for person in household.members)
    earners_left = any(not person.deceased and person.employment is not None for person in household.members)
    return earners_lost and not earners_left


# --- village exit (needs village aggregates, so it is a separate pure function) ----------


# --- 防止返贫动态监测 (from 2021): the monitoring range and risk elimination --------------------------
#
# Choices (documented in docs/monitoring.md and the pack notes):
# * The range is judged for households that are not in the poverty register's assistance right now:
#   candidates (never registered), exited and monitored households. Registered / returned households
#   are already assisted as poor households, and removed ones are out of the register.
# * Inside the range on income: per-capita net income strictly below the range line of its income year
#   (at the line is outside). A year without a figure keeps the latest earlier figure; an income year
#   before the first figure uses the first figure (the range began with it).
# * Rigid expenses "clearly exceed income": their total above monitoring.rigid_expense_share x the
#   household's net income (per-capita net income x living members, at least one).
# * Risk elimination: the latest unbroken run of dated income observations at or above the range line,
#   up to as_of, has lasted at least monitoring.elimination_min_months whole months.

GUIDELINE = "中农组发〔2021〕7号"
MONITORED_POPULATION = ("candidate", "exited", "monitored")
RANGE_PARAMETERS = ("monitoring.range_line", "monitoring.rigid_expense_share", "monitoring.first_year")
ELIMINATION_PARAMETERS = ("monitoring.elimination_min_months", "monitoring.range_line",
                          "monitoring.rigid_expense_share", "monitoring.elimination_guarantees")
# Rigid-expense items and the monitoring risk cause each one names (RiskCause of shared/snapshot.py).
RIGID_CAUSES = (("medical", "illness"), ("disability_care", "disability"), ("schooling", "schooling"),
                ("disaster", "disaster"), ("accident", "accident"))


@dataclass(frozen=True)
class IncomeObservation:
    """One stored snapshot's income facts and the day the registry recorded it."""
    observed_on: dt.date
    income_year: int | None
    per_capita_net: Decimal | None
    household_version: int = 0


def monitoring_in_force(policy, as_of: dt.date) -> bool:
    first = policy.param("monitoring.first_year", None)
    return first is not None and as_of.year >= int(first)


def monitoring_source(policy, *parameters: str) -> Citation | DocumentCitation | None:
    """A seed citation when a pack cites one for these parameters, else the guideline as a document
    (outside the seeds), naming the pack the first parameter's value comes from and its note."""
    cited = citation_span(policy, *parameters)
    if cited is not None:
        return cited
    present = [name for name in parameters if policy.has(name)]
    if not present:
        return None
    parameter = policy.parameter(present[0])
    return document_citation(GUIDELINE, origin=parameter.origin, note=parameter.note)


def range_line(policy, income_year: int | None) -> tuple[Decimal | None, int | None]:
    """(the range line applied to an income year, the year of the figure used)."""
    lines = {int(year): value for year, value in (policy.param("monitoring.range_line", None) or {}).items()}
    if not lines or income_year is None:
        return None, None
    earlier = [year for year in lines if year <= income_year]
    used = max(earlier) if earlier else min(lines)
    return lines[used], used


def _line_text(year: int | None, used: int | None) -> str:
    if used is None or used == year:
        return f"the {year} range line"
    return f"the range line of {used} (no figure for {year})"


def household_net_income(household: Household) -> tuple[Decimal | None, int]:
    members = max(1, len(household.living_members()))
    if household.income is None:
        return None, members
    return household.income.per_capita_net * members, members


def _rigid_check(ctx: RuleContext) -> tuple[str, Condition]:
    """Passes when rigid expenses do not clearly exceed income (not reported counts as not exceeding)."""
    household = ctx.household
    rigid = household.rigid_expenses
    share = ctx.param("monitoring.rigid_expense_share")
    if rigid is None:
        return ("rigid_expense", cond(f"rigid expenses not above {share} x household net income "
                                      "(none reported: judged on income alone)", None, True))
    total = rigid.total()
    income, members = household_net_income(household)
    limit = None if income is None else income * share
    exceeds = limit is not None and total > limit
    text = (f"rigid expenses of {rigid.year} ({total}) not above {share} x household net income "
            f"({income} = per-capita {household.income.per_capita_net if household.income else None} x "
            f"{members} living members)" if income is not None else
            f"rigid expenses of {rigid.year} ({total}) not above {share} x household net income (income unknown)")
    return ("rigid_expense", cond(text, total, not exceeds))


def monitoring_range(ctx: RuleContext) -> Assessment:
    """result = inside the range; `unmet` lists why (income_below_range, rigid_expense)."""
    income, year = _income(ctx.household)
    line, used = range_line(ctx.policy, year)
    below = income is not None and line is not None and income < line
    checks = [("income_below_range",
               cond(f"per-capita net income of {year} at or above {_line_text(year, used)} {line}", income,
                    not below)),
              _rigid_check(ctx)]
    inside = [name for name, check in checks if not check.passed]
    return make_assessment("monitoring_range", result=bool(inside), unmet=inside,
                      explanation=[check for _, check in checks],
                      source=monitoring_source(ctx.policy, *RANGE_PARAMETERS))


def risk_causes(household: Household, assessment: Assessment) -> list[str]:
    """The monitoring risk causes a range assessment names (the vocabulary of registry leads)."""
    causes = []
    if "income_below_range" in assessment.unmet:
        causes.append("income_drop")
    if "rigid_expense" in assessment.unmet:
        causes.append("rigid_expense")
        rigid = household.rigid_expenses
        causes += [cause for item, cause in RIGID_CAUSES if rigid is not None and getattr(rigid, item) > 0]
    return causes


def whole_months(start: dt.date, end: dt.date) -> int:
    """Whole calendar months from start to end: 15 Mar -> 14 Sep is 5, -> 15 Sep is 6; a month's last
    day completes it (31 Aug -> 28 Feb is 6, 31 Jan -> 30 Jun is 5)."""
    if end < start:
        return 0
    months = (end.year - start.year) * 12 + end.month - start.month
    last_day = calendar.monthrange(end.year, end.month)[1]
    if end.day < start.day and end.day != last_day:
        months -= 1
    return max(months, 0)


def above_range_run(policy, history: Iterable[IncomeObservation] | None,
                    as_of: dt.date) -> tuple[dt.date | None, int, int]:
    """(above the range since, whole months to as_of, observations used): the latest unbroken run of
    observations at or above the range line of their income year, among those observed up to as_of."""
    seen = sorted((o for o in (history or ()) if o.observed_on <= as_of),
                  key=lambda o: (o.observed_on, o.household_version))
    since = None
    for observation in reversed(seen):
        line, _ = range_line(policy, observation.income_year)
        if observation.per_capita_net is None or line is None or observation.per_capita_net < line:
            break
        since = observation.observed_on
    return since, (whole_months(since, as_of) if since else 0), len(seen)


def risk_elimination(ctx: RuleContext) -> Assessment:
    return elimination(ctx)[0]


def elimination(ctx: RuleContext) -> tuple[Assessment, dt.date | None, int]:
    """The elimination criteria (中农组发〔2021〕7号): (assessment, above the range since, months)."""
    minimum = int(ctx.param("monitoring.elimination_min_months"))
    since, months, used = above_range_run(ctx.policy, ctx.income_history, ctx.as_of)
    if ctx.income_history is None:
        when = "no dated income history (an evaluation without stored history)"
    elif since is None:
        when = f"not above the range on the latest of {used} observations up to {ctx.as_of}"
    else:
        when = f"above since {since.isoformat()}, {used} observations up to {ctx.as_of}"
    checks = [("income_above_range_months",
               cond(f"income at or above the range for at least {minimum} whole months up to {ctx.as_of} ({when})",
                    months, months >= minimum))]
    name, rigid = _rigid_check(ctx)
    checks.append(("rigid_expense_resolved", rigid))
    guarantees = ctx.household.guarantees
    for item in ctx.param("monitoring.elimination_guarantees"):
        value = getattr(guarantees, item)
        checks.append((item, cond(f"{item} secured (visited and verified)", value, value is True)))
    assessment = _assessment("risk_elimination", checks, monitoring_source(ctx.policy, *ELIMINATION_PARAMETERS))
    return assessment, since, months
