"""Education aid (教育扶贫), Nankang 2020 (001 L589-L651) and Ganzhou (000 L195). Per student per school year."""
from __future__ import annotations

from shared.money import ZERO
from shared.snapshot import Person
from services.benefits.rules.common import (
    per_person,
    Entitlement, RuleContext, citation_of, cond, entitlement, is_other_poor, school_year,
)


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    return per_person(ctx, RULES, applies=lambda person: person.student is not None)


def _poor(ctx: RuleContext) -> bool:
    return ctx.registered or is_other_poor(ctx.household)


def _poor_condition(ctx: RuleContext):
    return cond("poor family (registered, 低保, 特困 or marginal)", ctx.household.status, _poor(ctx))


def _award(program: str, ctx: RuleContext, person_id: str, conditions, amount, parameter: str, unit="year"):
    return entitlement(program, person_id=person_id, conditions=conditions, amount=amount, unit=unit,
                       period=school_year(ctx.as_of), source=citation_of(ctx.policy, parameter))


def preschool(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if person.student.stage != "preschool":
        return None
    amount = ctx.param("education.preschool.registered") if ctx.registered else ctx.param("education.preschool.other_poor")
    return _award("education.preschool", ctx, person_id, [_poor_condition(ctx),
                  cond("registered rate, else other-poor rate", ctx.registered, amount > 0)], amount,
                  "education.preschool.registered")


def boarding(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage not in ("primary", "junior") or not student.boarding:
        return None
    table = ctx.param("education.boarding.special_school" if student.special_school else "education.boarding.base")
    registered_only = ctx.param("education.boarding.registered_only")
    bonus = ctx.param("education.boarding.registered_bonus") if ctx.registered else ZERO
    conditions = [ctx.registration() if registered_only else _poor_condition(ctx),
                  cond(f"{student.stage} boarder{' (special education)' if student.special_school else ''}",
                       table[student.stage], True),
                  cond("registered household bonus", bonus, True)]
    return _award("education.boarding", ctx, person_id, conditions, table[student.stage] + bonus,
                  "education.boarding.base")


def non_boarding(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage not in ("primary", "junior") or student.boarding:
        return None
    amount = ctx.param("education.non_boarding")[student.stage]
    return _award("education.non_boarding", ctx, person_id,
                  [ctx.registration(), cond(f"{student.stage} non-boarder", amount, True)], amount,
                  "education.non_boarding")


def senior_tuition(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if person.student.stage != "senior":
        return None
    schools = ctx.param("education.senior_tuition_schools")
    school = person.student.school or ""
    amount = next((fee for name, fee in schools.items() if name in school), ctx.param("education.senior_tuition"))
    disabled = person.disability is not None
    eligible = ctx.registered or is_other_poor(ctx.household) or disabled
    return _award("education.senior_tuition", ctx, person_id,
                  [cond("registered, 低保, 特困 or disabled student", ctx.household.status, eligible),
                   cond("tuition waived for the school", school, True)], amount, "education.senior_tuition")


def senior_grant(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if person.student.stage != "senior":
        return None
    tiers = ctx.param("education.senior_grant.tiers")
    tier = person.student.need_level or int(ctx.param("education.senior_grant.default_tier"))
    amount = ctx.param("education.senior_grant.registered") if ctx.registered else tiers[tier]
    return _award("education.senior_grant", ctx, person_id,
                  [_poor_condition(ctx), cond("registered rate, else tier by need", tier, True)], amount,
                  "education.senior_grant.tiers")


def vocational_tuition(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage != "vocational":
        return None
    amount, rate_condition, parameter = _vocational_rate(ctx, student)
    # Free tuition covers every full-time secondary-vocational student (L623), poor or not.
    return _award("education.vocational_tuition", ctx, person_id,
                  [cond("full-time secondary-vocational student", student.major_group, True), rate_condition], amount,
                  parameter)


def _vocational_rate(ctx: RuleContext, student):
    """The rate of L625: the school's own figure if it gave one; else 850 for a student who entered before
    autumn 2018 (entry year 2017 or earlier, the intake being in autumn); else the major group's rate."""
    entered_before = ctx.param("education.vocational_tuition.old_rate_entered_before", None)
    entry_year = student.entry_year
    if student.vocational_tuition is not None:
        return (student.vocational_tuition, cond("tuition as the school reports it", student.vocational_tuition, True),
                "education.vocational_tuition.by_major")
    if entered_before is not None and entry_year is not None and entry_year < entered_before:
        return (ctx.param("education.vocational_tuition.old_rate"),
                cond(f"entered before autumn {entered_before}: the former rate", entry_year, True),
                "education.vocational_tuition.old_rate")
    by_major = ctx.param("education.vocational_tuition.by_major")
    amount = by_major.get(student.major_group or "", ctx.param("education.vocational_tuition.default"))
    if entered_before is None:
        how = "rate by major group"
    elif entry_year is None:
        how = f"entry year unknown: current rate by major group (a student who entered before autumn {entered_before} keeps the former rate)"
    else:
        how = f"entered in autumn {entered_before} or later: rate by major group"
    return amount, cond(how, {"entry_year": entry_year, "major_group": student.major_group}, True), \
        "education.vocational_tuition.by_major"


def vocational_grant(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage != "vocational":
        return None
    max_year = int(ctx.param("education.vocational_grant.max_year"))
    year = student.year_of_study or 1
    return _award("education.vocational_grant", ctx, person_id,
                  [cond(f"year of study <= {max_year}", year, year <= max_year)],
                  ctx.param("education.vocational_grant"), "education.vocational_grant")


def university_entry(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage != "university" or not student.admitted_this_year:
        return None
    return _award("education.university_entry", ctx, person_id,
                  [_poor_condition(ctx), cond("admitted to a full-time university this year", True, True)],
                  ctx.param("education.university_entry"), "education.university_entry", unit="once")


def university_travel(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage != "university" or not student.admitted_this_year:
        return None
    rates = ctx.param("education.university_travel")
    amount = rates["out_of_province" if student.out_of_province else "in_province"]
    return _award("education.university_travel", ctx, person_id,
                  [ctx.registration(), cond("out of province", student.out_of_province, True)], amount,
                  "education.university_travel", unit="once")


def student_loan(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    student = person.student
    if student.stage not in ("university", "graduate"):
        return None
    cap = ctx.param("education.student_loan")[student.stage]
    requested = student.loan_requested
    amount = min(requested, cap) if requested is not None else cap
    return _award("education.student_loan", ctx, person_id,
                  [_poor_condition(ctx),
                   cond(f"loan up to {cap} a year (requested, or the maximum if none)", requested, True)],
                  amount, "education.student_loan")


RULES = (
    ("education.preschool", preschool),
    ("education.boarding", boarding),
    ("education.non_boarding", non_boarding),
    ("education.senior_tuition", senior_tuition),
    ("education.senior_grant", senior_grant),
    ("education.vocational_tuition", vocational_tuition),
    ("education.vocational_grant", vocational_grant),
    ("education.university_entry", university_entry),
    ("education.university_travel", university_travel),
    ("education.student_loan", student_loan),
)
