"""Safety net (兜底保障): 低保, 特困, disability subsidies, temporary assistance (001 L663-L693, 000 L282, 002 L61).

Person-level categories (shared/person_categories.py): 低保 pays per covered person and 特困 support only
to the members who are 特困 persons. Snapshots stored before person-level flags (no member flagged)
are read so:

* 低保 household, no member's `dibao_covered` true: every living member whose cover is not stated
  `false` is covered (整户保障, the default of 001 L665-L667) - what the registry also records;
* 特困 household (`tekun_*`), no member's `tekun` set: a one-member household's member is the 特困
  person; with several members nobody is paid, and the entitlement says why
  ("特困人员未标注 / tekun person not identified"), because who is the 特困 person cannot be guessed.
"""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from shared.snapshot import Person
from services.benefits.rules.common import (
    Entitlement, RuleContext, age_on, calendar_month, citation_of, citation_span, cond, entitlement,
    not_yet_exited,
)

TEKUN_KINDS = {"tekun_dispersed": "dispersed", "tekun_concentrated": "concentrated"}
# 单人保 (001 L681): besides grade 1-2 (disability.severe_grades), grade-3 intellectual and mental
# disability count as severe; "完全丧失劳动能力和部分丧失劳动能力" = lost / none and weak capacity.
SINGLE_PERSON_GRADE3_KINDS = ("intellectual", "mental")
SINGLE_PERSON_LABOUR = ("weak", "lost", "none")


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    results: list[Entitlement] = []
    if ctx.enabled("safety_net.dibao"):
        covered, how = dibao_covered_members(ctx)
        if "dibao" in ctx.household.categories or covered:
            results.append(dibao(ctx, covered, how))
        if ctx.param("dibao.single_person_allowed", None):
            results += single_person_dibao(ctx, {person_id for person_id, _ in covered})
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
    return _yearly_standard_per_month(ctx)


def _yearly_standard_per_month(ctx: RuleContext) -> tuple[Decimal, str]:
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


def dibao_covered_members(ctx: RuleContext) -> tuple[list[tuple[str, Person]], str]:
    """The living members in the household's 低保 cover, and how they were found (module docstring)."""
    flagged = [(pid, person) for pid, person in ctx.members if person.dibao_covered is True]
    if flagged or "dibao" not in ctx.household.categories:
        return flagged, "members flagged dibao_covered"
    return ([(pid, person) for pid, person in ctx.members if person.dibao_covered is not False],
            "no member flagged: every member not stated false (整户保障, 001 L665-L667)")


def dibao(ctx: RuleContext, covered: list[tuple[str, Person]], how: str) -> Entitlement:
    rate, rate_how = dibao_monthly_rate(ctx)
    conditions = [
        cond("household in 低保 (a living member covered)", ctx.household.categories, True),
        cond("class set", ctx.household.dibao_class, ctx.household.dibao_class is not None),
        cond(f"per covered member: {rate_how}", rate, rate > 0),
        cond(f"covered members ({how})", [pid for pid, _ in covered], len(covered) > 0),
    ]
    if ctx.param("dibao.class_share", None) is not None:  # Shaoguan: a share of the standard per class (002 L61)
        source = citation_span(ctx.policy, "dibao.class_share", "dibao.monthly_standard")
    else:
        parameter = ("dibao.class_monthly" if ctx.param("dibao.class_monthly", None) is not None
                     else "dibao.standard_by_year")
        source = citation_of(ctx.policy, parameter)
    return entitlement("safety_net.dibao", conditions=conditions, amount=rate * len(covered), unit="month",
                       period=calendar_month(ctx.as_of), source=source)


def severely_disabled_or_ill(ctx: RuleContext, person: Person) -> bool:
    """单人保's population (001 L681): 一级、二级重度残疾人, 三级智力/精神残疾人, 重病患者."""
    disability = person.disability
    if disability is not None and (Decimal(disability.grade) in ctx.param("disability.severe_grades")
                                   or (disability.grade == 3 and disability.kind in SINGLE_PERSON_GRADE3_KINDS)):
        return True
    return person.health == "serious_illness"


def single_person_dibao(ctx: RuleContext, covered_ids: set[str]) -> list[Entitlement]:
    """单人保 (001 L665-L667, L681): a severely disabled or seriously ill member of a not-yet-exited
    registered household who has (partly) lost labour capacity and is not in a 低保 cover together with
    the family may, on the person's own application, be covered alone at the full standard.

    The entitlement is what the person may claim; the application itself is the person's, and once
    approved the registry records them `dibao_covered` with class A1 (L665 puts the single-person cover
    in class A, full standard), and the household 低保 entitlement pays them.
    """
    if not not_yet_exited(ctx.household):
        return []
    standard = ctx.param("dibao.monthly_standard", None)
    how = "full monthly standard (按照农村最低生活保障标准全额救助)"
    if standard is None:
        standard, how = _yearly_standard_per_month(ctx)
    results = []
    for person_id, person in ctx.members:
        # A 特困 person gets 特困 support (L669-L671) instead: the two covers do not overlap (our choice;
        # the seed names no case of both).
        if person_id in covered_ids or person.tekun or not severely_disabled_or_ill(ctx, person):
            continue
        conditions = [
            cond("not-yet-exited registered household (未脱贫建档立卡贫困户)", ctx.household.status, True),
            cond("severely disabled (grade 1-2, grade-3 intellectual / mental) or seriously ill",
                 {"disability": person.disability.model_dump() if person.disability else None,
                  "health": person.health}, True),
            cond("fully or partly lost labour capacity (完全/部分丧失劳动能力)", person.labour_capacity,
                 person.labour_capacity in SINGLE_PERSON_LABOUR),
            cond("not in a 低保 cover with other family members", person.dibao_covered, True),
            cond(f"covered alone (单人户) on the person's own application: {how}", standard, standard > 0),
        ]
        results.append(entitlement("safety_net.dibao", person_id=person_id, conditions=conditions, amount=standard,
                                   unit="month", period=calendar_month(ctx.as_of),
                                   source=citation_span(ctx.policy, "dibao.monthly_standard",
                                                        "dibao.single_person_allowed")))
    return results


def tekun_members(ctx: RuleContext) -> tuple[list[tuple[str, Person, str]], list[str]]:
    """(特困 persons with their support kind, household tekun categories no member explains)."""
    flagged = [(pid, person, person.tekun) for pid, person in ctx.members if person.tekun]
    unexplained = [c for c in ctx.household.categories
                   if c in TEKUN_KINDS and not any(kind == TEKUN_KINDS[c] for _, _, kind in flagged)]
    # An old snapshot carries no tekun flag at all (a deceased member's flag still counts as one).
    old_snapshot = not any(person.tekun for person in ctx.household.members)
    if old_snapshot and len(unexplained) == 1 and len(ctx.members) == 1:
        pid, person = ctx.members[0]
        return [(pid, person, TEKUN_KINDS[unexplained[0]])], []
    return flagged, unexplained


def tekun(ctx: RuleContext) -> list[Entitlement]:
    persons, unexplained = tekun_members(ctx)
    base = ctx.param("tekun.base_monthly")
    care_fee = ctx.param("tekun.care_fee_monthly")
    source = citation_span(ctx.policy, "tekun.base_monthly", "tekun.care_fee_monthly")
    results = []
    for person_id, person, kind in persons:
        disabled = person.self_care in ("full_loss", "partial_loss")
        support = base["disabled"] if disabled else base[kind]
        conditions = [cond(f"特困 person, {kind} support", kind, True),
                      cond("disabled or semi-disabled (失能/半失能) rate", disabled, True),
                      cond(f"care fee by self-care ability ({person.self_care})", care_fee[person.self_care], True)]
        results.append(entitlement("safety_net.tekun", person_id=person_id, conditions=conditions,
                                   amount=support + care_fee[person.self_care], unit="month",
                                   period=calendar_month(ctx.as_of), source=source))
    for category in unexplained:
        results.append(entitlement("safety_net.tekun", conditions=[
            cond(f"household {category}: 特困人员未标注 / tekun person not identified (flag members[].tekun)",
                 [pid for pid, _ in ctx.members], False)],
            amount=ZERO, unit="month", period=calendar_month(ctx.as_of), source=source))
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
                       unit="month", period=calendar_month(ctx.as_of),
                       source=citation_span(ctx.policy, "disability.care_monthly", "disability.living_monthly",
                                            "disability.grade1_registered_monthly", "disability.home_care_monthly",
                                            "disability.home_care_min_age"))


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


def patient_safety_net(ctx: RuleContext, person_id: str) -> tuple[bool, bool]:
    """(in the household's 低保 cover, a 特困 person) for one member — the patient of a one-stop settlement,
    judged per person exactly as the monthly payments are (a household's 特困 category does not make every
    member a 特困 person)."""
    covered, _ = dibao_covered_members(ctx)
    tekun_persons, _ = tekun_members(ctx)
    in_dibao = "dibao" in ctx.household.categories and any(pid == person_id for pid, _ in covered)
    return in_dibao, any(pid == person_id for pid, _, _ in tekun_persons)
