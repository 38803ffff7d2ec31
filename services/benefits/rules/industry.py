"""Industry (产业扶贫), Nankang 2020, seed 001 L203-L272. Household-level, registered households."""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from services.benefits.rules.common import (
    Condition, Entitlement, RuleContext, calendar_year, capped, citation_of, citation_span, cond, entitlement,
)

CROP_FIELDS_PAID_BY_COUNT = ("poultry", "rabbits", "pigs_sheep", "beef_cattle", "bee_boxes")


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    results: list[Entitlement] = []
    special = deep_poverty_special_items(ctx) if ctx.enabled("industry.deep_poverty_special") else {}
    if ctx.enabled("industry.deep_poverty_special") and special:
        results.append(deep_poverty_special(ctx, special))
    rules = (
        ("industry.crop_livestock", lambda: crop_livestock(ctx, excluded=set(special))),
        ("industry.land_transfer_out", lambda: land_transfer_out(ctx)),
        ("industry.machinery", lambda: machinery(ctx)),
        ("industry.double_rice_oil", lambda: double_rice_oil(ctx)),
        ("industry.covid_unsold", lambda: covid_unsold(ctx)),
        ("industry.relocated_facility", lambda: relocated_facility(ctx)),
    )
    for program, rule in rules:
        if ctx.enabled(program):
            result = rule()
            if result is not None:
                results.append(result)
    return results


def _quantity(production, field: str) -> Decimal:
    return Decimal(getattr(production, field))


def crop_livestock(ctx: RuleContext, excluded: set[str]) -> Entitlement | None:
    production = ctx.household.production
    rates = ctx.param("crop_livestock.rates")
    minimums = ctx.param("crop_livestock.minimums")
    lines: list[Condition] = []
    total = ZERO
    for field, rate in rates.items():
        quantity = _quantity(production, field)
        if quantity <= 0:
            continue
        if field in excluded:
            lines.append(cond(f"{field} paid under industry.deep_poverty_special, excluded (L260)", quantity, True))
            continue
        minimum = minimums.get(field, Decimal(0))
        if quantity < minimum:
            lines.append(cond(f"{field} >= {minimum} to qualify", quantity, True))
            continue
        total += quantity * rate
        lines.append(cond(f"{field} x {rate}", quantity * rate, True))
    if not lines:
        return None
    cap = ctx.param("crop_livestock.household_cap")
    conditions = [ctx.registration(), *lines, cond(f"household total <= {cap}", total, True)]
    return entitlement("industry.crop_livestock", conditions=conditions, amount=capped(total, cap), unit="year",
                       period=calendar_year(ctx.as_of), source=citation_span(ctx.policy, "crop_livestock.rates", "crop_livestock.minimums",
                                                             "crop_livestock.household_cap"))


def land_transfer_out(ctx: RuleContext) -> Entitlement | None:
    rented = ctx.household.production.land_rented_out
    rates = ctx.param("land_transfer_out.rates")
    amounts = {field: _quantity(rented, field) * rate for field, rate in rates.items() if _quantity(rented, field) > 0}
    if not amounts:
        return None
    conditions = [ctx.registration()] + [cond(f"{field} x {rates[field]}", amount, True) for field, amount in amounts.items()]
    return entitlement("industry.land_transfer_out", conditions=conditions, amount=sum(amounts.values(), ZERO),
                       unit="year", period=calendar_year(ctx.as_of),
                       source=citation_of(ctx.policy, "land_transfer_out.rates"))


def machine_subsidy(price: Decimal, national_subsidy: Decimal, share: Decimal) -> Decimal:
    return max(price * share - national_subsidy, ZERO)


def machinery(ctx: RuleContext) -> Entitlement | None:
    machines = ctx.household.production.machinery
    if not machines:
        return None
    max_price = ctx.param("machinery.max_price")
    share = ctx.param("machinery.price_share")
    best_per_category: dict[str, Decimal] = {}
    conditions = [ctx.registration()]
    for machine in machines:
        if machine.price > max_price:
            conditions.append(cond(f"{machine.category}: price <= {max_price} (excluded)", machine.price, True))
            continue
        subsidy = machine_subsidy(machine.price, machine.national_subsidy, share)
        # One machine per category: keep the largest subsidy, a deterministic and household-favourable pick.
        best_per_category[machine.category] = max(subsidy, best_per_category.get(machine.category, ZERO))
    max_machines = int(ctx.param("machinery.max_machines"))
    chosen = sorted(best_per_category.items(), key=lambda item: (-item[1], item[0]))[:max_machines]
    for category, subsidy in chosen:
        conditions.append(cond(f"{category}: price x {share} - national subsidy", subsidy, True))
    total = sum((subsidy for _, subsidy in chosen), ZERO)
    cap = ctx.param("machinery.household_cap")
    conditions.append(cond(f"at most {max_machines} machines, one per category; total <= {cap}", total, True))
    return entitlement("industry.machinery", conditions=conditions, amount=capped(total, cap), unit="once",
                       period=calendar_year(ctx.as_of), source=citation_span(ctx.policy, "machinery.max_price", "machinery.price_share",
                                                             "machinery.max_machines", "machinery.household_cap"))


def double_rice_oil(ctx: RuleContext) -> Entitlement | None:
    production = ctx.household.production
    area = production.double_rice_mu + production.oil_crops_mu
    if area <= 0:
        return None
    rate = ctx.param("double_rice_oil.rate_per_mu")
    cap = ctx.param("double_rice_oil.household_cap")
    total = area * rate
    conditions = [ctx.registration(), cond(f"double-rice + oil-crop mu x {rate}", total, True),
                  cond(f"household total <= {cap} (stacks with crop_livestock, L229)", total, True)]
    return entitlement("industry.double_rice_oil", conditions=conditions, amount=capped(total, cap), unit="year",
                       period=calendar_year(ctx.as_of), source=citation_span(ctx.policy, "double_rice_oil.rate_per_mu",
                                                             "double_rice_oil.household_cap"))


def deep_poverty_special_items(ctx: RuleContext) -> dict[str, Decimal]:
    """Varieties paid under the deep-poverty special subsidy, with their uncapped amounts.

    The seed names the township and villages, not codes, so they are matched by name
    within the pack's region (PROGRAMS.md §2).
    """
    village = ctx.household.village
    if village is None:
        return {}
    production = ctx.household.production
    items: dict[str, Decimal] = {}
    if village.township_name == ctx.param("deep_poverty_special.longmu_township_name") and production.beef_cattle > 0:
        steps = ctx.param("deep_poverty_special.longmu_cattle_progressive")
        items["beef_cattle"] = sum(steps[: production.beef_cattle], ZERO)
    special = ctx.param("deep_poverty_special.villages").get(village.name)
    if special and special["township"] == village.township_name:
        quantity = _quantity(production, special["field"])
        if quantity > 0 and quantity >= special["minimum"]:
            items[special["field"]] = quantity * special["rate"]
    return items


def deep_poverty_special(ctx: RuleContext, items: dict[str, Decimal]) -> Entitlement:
    cap = ctx.param("deep_poverty_special.household_cap")
    total = sum(items.values(), ZERO)
    conditions = [ctx.registration()]
    conditions += [cond(f"{field} (deep-poverty township / village rate)", amount, True) for field, amount in items.items()]
    conditions.append(cond(f"household total <= {cap}", total, True))
    return entitlement("industry.deep_poverty_special", conditions=conditions, amount=capped(total, cap),
                       unit="year", period=calendar_year(ctx.as_of),
                       source=citation_span(ctx.policy, "deep_poverty_special.longmu_cattle_progressive",
                                            "deep_poverty_special.villages", "deep_poverty_special.household_cap"))


def covid_unsold(ctx: RuleContext) -> Entitlement | None:
    unsold = ctx.household.production.covid_unsold
    if unsold is None:
        return None
    year = int(ctx.param("covid_unsold.year"))
    rates = ctx.param("covid_unsold.rates")
    minimums = ctx.param("covid_unsold.minimums")
    conditions = [ctx.registration(), cond(f"evaluation year is {year}", ctx.as_of.year, ctx.as_of.year == year)]
    capped_total = ZERO
    for field, rate in rates.items():
        quantity = _quantity(unsold, field)
        if quantity <= 0:
            continue
        enough = quantity >= minimums.get(field, Decimal(0))
        conditions.append(cond(f"{field} >= {minimums.get(field, 0)}: x {rate}", quantity * rate if enough else ZERO, True))
        if enough:
            capped_total += quantity * rate
    cap = ctx.param("covid_unsold.household_cap")
    bamboo_rats = Decimal(unsold.bamboo_rats) * ctx.param("covid_unsold.bamboo_rat_rate")
    conditions.append(cond(f"items total <= {cap}; bamboo rats uncapped", bamboo_rats, True))
    return entitlement("industry.covid_unsold", conditions=conditions, amount=capped(capped_total, cap) + bamboo_rats,
                       unit="once", period=str(year),
                       source=citation_span(ctx.policy, "covid_unsold.rates", "covid_unsold.minimums",
                                            "covid_unsold.household_cap", "covid_unsold.bamboo_rat_rate"))


def relocated_facility(ctx: RuleContext) -> Entitlement | None:
    facility = ctx.household.production.relocated_facility
    if facility is None:
        return None
    relocated = ctx.household.relocation.relocated or "relocated" in ctx.household.categories
    items = ctx.param("relocated_facility.items")
    group_caps = ctx.param("relocated_facility.group_caps")
    group_totals: dict[str, Decimal] = {}
    conditions = [ctx.registration(), cond("relocated household (易地搬迁)", relocated, relocated)]
    for field, item in items.items():
        quantity = _quantity(facility, field)
        if quantity <= 0:
            continue
        counted = capped(quantity, item["max_quantity"])
        group_totals[item["group"]] = group_totals.get(item["group"], ZERO) + counted * item["rate"]
        conditions.append(cond(f"{field}: min(quantity, {item['max_quantity']}) x {item['rate']}", counted * item["rate"], True))
    total = ZERO
    for group, amount in sorted(group_totals.items()):
        paid = capped(amount, group_caps[group])
        conditions.append(cond(f"{group} <= {group_caps[group]}", paid, True))
        total += paid
    return entitlement("industry.relocated_facility", conditions=conditions, amount=total, unit="once",
                       period=calendar_year(ctx.as_of), source=citation_span(ctx.policy, "relocated_facility.items",
                                                             "relocated_facility.group_caps"))
