"""Assessments: exit readiness, identification, village exit, monitoring risk (PROGRAMS.md §1)."""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from shared.snapshot import Household
from services.benefits.rules.common import (
    Assessment, Citation, Condition, RuleContext, cite, citation_of, citation_span, cond, is_exited_household,
    is_marginal_household,
)

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
    return Assessment(kind=kind, result=not unmet, unmet=unmet, explanation=[check for _, check in checks], source=source)


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
    return Assessment(kind="monitoring_risk", result=bool(raised), unmet=raised,
                      explanation=[check for _, check in flags],
                      source=citation_of(ctx.policy, "monitoring.medical_oop_threshold"))


def lost_only_earner(household: Household) -> bool:
    earners_lost = any(person.deceased and person.employment is not None for person in household.members)
    earners_left = any(not person.deceased and person.employment is not None for person in household.members)
    return earners_lost and not earners_left


# --- village exit (needs village aggregates, so it is a separate pure function) ----------
