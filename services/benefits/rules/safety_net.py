"""Safety net (兜底保障): 低保, 特困, disability subsidies, temporary assistance (001 L663-L693, 000 L282, 002 L61)."""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from shared.snapshot import Person
from services.benefits.rules.common import (
    Entitlement, RuleContext, age_on, calendar_month, citation_of, cond, entitlement, not_yet_exited,
)


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    results: list[Entitlement] = []
    if ctx.enabled("safety_net.dibao") and "dibao" in ctx.household.categories:
        results.append(dibao(ctx))
    if ctx.enabled("safety_net.tekun"):
        results += tekun(ctx)
    if ctx.enabled("safety_net.disability"):
        results += [disability(ctx, person_id, person) for person_id, person in ctx.members if person.disability]
    if ctx.enabled("safety_net.temporary_assistance"):
        result = temporary_assistance(ctx)
        if result is not None:
            results.append(result)
    return results


def dibao_monthly_rate(ctx: RuleContext) -> tuple[Decimal, str]:
    """Per-person monthly payment and how it was found, for the pack in force."""
    dibao_class = ctx.household.dibao_class
    classes = ctx.param("dibao.class_monthly", None)
    if classes is not None:
        return (classes.get(dibao_class, ZERO), f"class {dibao_class} tier")
    class_of = ctx.param("dibao.shaoguan_class_of", None)
    if class_of is not None:
        return _shaoguan_rate(ctx, class_of.get(dibao_class))
    by_year = ctx.param("dibao.standard_by_year")
    standard = by_year.get(ctx.as_of.year) or by_year[max(by_year)]
    return ((standard / 12).quantize(Decimal("0.01")), f"{ctx.as_of.year} standard / 12")


def _shaoguan_rate(ctx: RuleContext, shaoguan_class) -> tuple[Decimal, str]:
    standard = ctx.param("dibao.monthly_standard")
    shares = ctx.param("dibao.class_share")
    if shaoguan_class in shares:
        return (standard * shares[shaoguan_class], f"Shaoguan class {shaoguan_class}: {shares[shaoguan_class]} x standard")
    # Class 3 tops up the actual shortfall between monthly income and the standard.
    income = ctx.household.income.per_capita_net / 12 if ctx.household.income else ZERO
    return (max(standard - income, ZERO), "Shaoguan class 3: standard - monthly per-capita income")


def dibao(ctx: RuleContext) -> Entitlement:
    rate, how = dibao_monthly_rate(ctx)
    covered = [person for _, person in ctx.members if person.dibao_covered is not False]
    conditions = [
        cond("household in 低保", ctx.household.categories, True),
        cond("class set", ctx.household.dibao_class, ctx.household.dibao_class is not None),
        cond(f"per covered member: {how}", rate, rate > 0),
        cond("covered members", len(covered), len(covered) > 0),
    ]
    parameter = "dibao.class_monthly" if ctx.param("dibao.class_monthly", None) is not None else "dibao.standard_by_year"
    return entitlement("safety_net.dibao", conditions=conditions, amount=rate * len(covered), unit="month",
                       period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, parameter))


def tekun(ctx: RuleContext) -> list[Entitlement]:
    categories = set(ctx.household.categories)
    kind = "concentrated" if "tekun_concentrated" in categories else "dispersed" if "tekun_dispersed" in categories else None
    if kind is None:
        return []
    base = ctx.param("tekun.base_monthly")
    care_fee = ctx.param("tekun.care_fee_monthly")
    results = []
    for person_id, person in ctx.members:
        disabled = person.self_care in ("full_loss", "partial_loss")
        support = base["disabled"] if disabled else base[kind]
        conditions = [cond(f"特困 person, {kind} support", kind, True),
                      cond("disabled or semi-disabled (失能/半失能) rate", disabled, True),
                      cond(f"care fee by self-care ability ({person.self_care})", care_fee[person.self_care], True)]
        results.append(entitlement("safety_net.tekun", person_id=person_id, conditions=conditions,
                                   amount=support + care_fee[person.self_care], unit="month",
                                   period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, "tekun.base_monthly")))
    return results


def disability(ctx: RuleContext, person_id: str, person: Person) -> Entitlement:
    severe_grades = ctx.param("disability.severe_grades")
    grade = Decimal(person.disability.grade)
    severe = grade in severe_grades
    poor = ctx.registered or bool({"dibao", "tekun_dispersed", "tekun_concentrated"} & set(ctx.household.categories))
    needs_care = person.self_care != "able" or person.bedridden
    age = age_on(person, ctx.as_of)
    parts = {
        "care subsidy (severely disabled)": ctx.param("disability.care_monthly") if severe else ZERO,
        "living subsidy (poor disabled)": ctx.param("disability.living_monthly") if poor else ZERO,
        "grade-1, unable to care for self, registered: special care": (
            ctx.param("disability.grade1_registered_monthly") if grade == 1 and needs_care and ctx.registered else ZERO),
        "severely disabled, aged >= 16, long-term care, not-yet-exited registered household: home care": (
            ctx.param("disability.home_care_monthly")
            if severe and needs_care and age is not None and age >= ctx.param("disability.home_care_min_age")
            and not_yet_exited(ctx.household) else ZERO),
    }
    total = sum(parts.values(), ZERO)
    conditions = [cond("severely disabled or in a poor household", {"grade": person.disability.grade, "poor": poor},
                       severe or poor)]
    conditions += [cond(label, amount, True) for label, amount in parts.items()]
    return entitlement("safety_net.disability", person_id=person_id, conditions=conditions, amount=total,
                       unit="month", period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, "disability.care_monthly"))


def temporary_assistance(ctx: RuleContext) -> Entitlement | None:
    """One-off basic-living aid for a registered family hit by disaster or a major medical bill.

    The amount shown is the township's one-off ceiling (3 x monthly 低保 standard);
    larger 救急难 awards (10,000-30,000) are appraised case by case and not computed.
    """
    household = ctx.household
    threshold = ctx.param("monitoring.medical_oop_threshold")
    oop = household.medical_out_of_pocket_ytd or ZERO
    emergency = household.disaster_this_year or oop > threshold
    if not emergency:
        return None
    ceiling = ctx.param("dibao.monthly_standard") * ctx.param("temporary_assistance.basic_living_multiple")
    conditions = [ctx.registration(),
                  cond("sudden hardship: disaster this year or medical out-of-pocket above threshold",
                       {"disaster": household.disaster_this_year, "medical_oop": oop}, True),
                  cond("one-off basic living aid <= 3 x monthly 低保 standard", ceiling, True)]
    return entitlement("safety_net.temporary_assistance", conditions=conditions, amount=ceiling, unit="claim",
                       period=calendar_month(ctx.as_of),
                       source=citation_of(ctx.policy, "temporary_assistance.basic_living_multiple"))
