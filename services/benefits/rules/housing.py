"""Housing renovation (001 L523-L527, 004 L96) and household water supply (001 L843)."""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from services.benefits.rules.common import (
    Entitlement, RuleContext, calendar_year, citation_of, cond, entitlement, is_marginal_household,
)


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    results = []
    if ctx.enabled("housing.renovation"):
        result = renovation(ctx)
        if result is not None:
            results.append(result)
    if ctx.enabled("water.self_supply"):
        result = water_self_supply(ctx)
        if result is not None:
            results.append(result)
    return results


def renovation_groups(ctx: RuleContext) -> list[str]:
    """The housing target groups the household belongs to, in the pack's table keys."""
    categories = set(ctx.household.categories)
    groups = []
    if ctx.registered:
        groups.append("registered")
    if "tekun_dispersed" in categories:
        groups.append("tekun_dispersed")
    if "dibao" in categories:
        groups.append("dibao")
    if not groups and ("marginal" in categories or is_marginal_household(ctx.household)):
        groups.append("marginal")
    return groups


def _has_disabled_member(ctx: RuleContext) -> bool:
    return any(person.disability is not None or person.health == "disabled" for _, person in ctx.members)


def renovation(ctx: RuleContext) -> Entitlement | None:
    housing = ctx.household.housing
    needs_work = housing.no_house or housing.planned_work is not None or housing.safety_grade in ("C", "D")
    if not needs_work:
        return None
    groups = renovation_groups(ctx)
    # No house at all is treated like a D-grade rebuild (001 L468: 无房户 are in scope).
    grade = "D" if housing.no_house else housing.safety_grade
    work = "rebuild" if housing.no_house else housing.planned_work
    table_name = {("D", "rebuild"): "renovation.rebuild", ("C", "repair"): "renovation.repair"}.get((grade, work))
    amount = ZERO
    if table_name and groups:
        table = ctx.param(table_name)
        amount = max(table[group] for group in groups)
        if table_name == "renovation.rebuild" and groups != ["marginal"] and _has_disabled_member(ctx):
            amount += ctx.param("renovation.disabled_member_bonus")
    conditions = [
        cond("in a housing target group (registered, dispersed 特困, 低保, marginal)", groups, bool(groups)),
        cond("D grade rebuilt or C grade repaired (C-grade rebuild gets nothing, L525)",
             f"{grade}/{work}", table_name is not None),
        cond("house not yet renovated (改造一户、销档一户, 004 L96)", housing.renovated, not housing.renovated),
        cond("disabled member (+bonus for rebuilds in the three poor groups)", _has_disabled_member(ctx), True),
    ]
    return entitlement("housing.renovation", conditions=conditions, amount=amount, unit="once",
                       period=calendar_year(ctx.as_of), source=citation_of(ctx.policy, "renovation.rebuild"))


def water_self_supply(ctx: RuleContext) -> Entitlement | None:
    water = ctx.household.water
    if water.planned_well is None and water.in_tap_coverage is not False:
        return None
    rates = ctx.param("water.self_supply")
    outside = water.in_tap_coverage is False
    conditions = [
        ctx.registration(),
        cond("outside tap-water coverage (inside: free connection instead)", water.in_tap_coverage, outside),
        cond("digs its own well", water.planned_well, water.planned_well is not None),
    ]
    amount = rates.get(water.planned_well, Decimal(0)) if water.planned_well else ZERO
    return entitlement("water.self_supply", conditions=conditions, amount=amount, unit="once",
                       period=calendar_year(ctx.as_of), source=citation_of(ctx.policy, "water.self_supply"))
