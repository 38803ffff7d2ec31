"""Employment (就业扶贫), Nankang 2020, seed 001 L284-L320. Per person of a registered household."""
from __future__ import annotations

from decimal import Decimal

from shared.money import ZERO
from shared.snapshot import Person
from services.benefits.rules.common import (
    per_person,
    Entitlement, RuleContext, calendar_month, calendar_year, citation_of, cond, entitlement,
)


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    return per_person(ctx, RULES)


def job_subsidy(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or job.monthly_wage is None or job.public_post is not None:
        return None
    min_contract = ctx.param("job_subsidy.min_contract_months")
    min_worked = ctx.param("job_subsidy.min_months_worked")
    monthly = ctx.param("job_subsidy.monthly")
    low_wage = ctx.param("job_subsidy.low_wage_threshold")
    share = ctx.param("job_subsidy.low_wage_share")
    amount = monthly if job.monthly_wage >= low_wage else min(monthly, job.monthly_wage * share)
    conditions = [
        ctx.registration(),
        cond(f"labour contract >= {min_contract} months", job.contract_months, job.contract_months >= min_contract),
        cond(f"months worked >= {min_worked}", job.months_worked, job.months_worked >= min_worked),
        cond(f"wage < {low_wage} caps the subsidy at {share} x wage", job.monthly_wage, True),
    ]
    return entitlement("employment.job_subsidy", person_id=person_id, conditions=conditions, amount=amount,
                       unit="month", period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, "job_subsidy.monthly"))


def workshop_subsidy(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or not job.workshop:
        return None
    minimum_wage = ctx.param("workshop_subsidy.minimum_wage")
    wage = job.monthly_wage or ZERO
    conditions = [ctx.registration(), cond("works in a recognised poverty workshop (扶贫车间)", True, True),
                  cond(f"monthly wage >= district minimum wage {minimum_wage}", wage, wage >= minimum_wage)]
    return entitlement("employment.workshop_subsidy", person_id=person_id, conditions=conditions,
                       amount=ctx.param("workshop_subsidy.monthly"), unit="month", period=calendar_month(ctx.as_of),
                       source=citation_of(ctx.policy, "workshop_subsidy.monthly"))


def hiring_subsidy(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or not job.key_enterprise_new_hire:
        return None
    year = int(ctx.param("hiring_subsidy.year"))
    min_contract = ctx.param("hiring_subsidy.min_contract_months")
    hired_year = job.hired_year if job.hired_year is not None else ctx.as_of.year
    conditions = [ctx.registration(), cond("new hire of a recognised key enterprise", True, True),
                  cond(f"hired in {year}", hired_year, hired_year == year),
                  cond(f"contract >= {min_contract} months", job.contract_months, job.contract_months >= min_contract)]
    return entitlement("employment.hiring_subsidy", person_id=person_id, conditions=conditions,
                       amount=ctx.param("hiring_subsidy.amount"), unit="once", period=str(year),
                       source=citation_of(ctx.policy, "hiring_subsidy.amount"))


def transport(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or job.place is None:
        return None
    village = ctx.household.village
    deep = bool(village and village.is_deep_poverty_village)
    rates = ctx.param("transport.deep_poverty_village_rates" if deep else "transport.rates")
    rate = rates.get(job.place)
    conditions = [ctx.registration(),
                  cond("workplace earns a transport subsidy (away from home or in a recognised park / base)",
                       job.place, rate is not None),
                  cond("household in a deep-poverty village (higher rate)", deep, True)]
    return entitlement("employment.transport", person_id=person_id, conditions=conditions, amount=rate or ZERO,
                       unit="year", period=calendar_year(ctx.as_of), source=citation_of(ctx.policy, "transport.rates"))


def public_post(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or job.public_post is None:
        return None
    cap = ctx.param("public_post.monthly_cap")
    pay = job.public_post.monthly_pay
    conditions = [ctx.registration(), cond(f"public post pay (subsidy = min({cap}, pay))", pay, pay > 0)]
    return entitlement("employment.public_post", person_id=person_id, conditions=conditions, amount=min(cap, pay),
                       unit="month", period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, "public_post.monthly_cap"))


def training(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if not person.trainings:
        return None
    already_paid = any(course.subsidy_paid for course in person.trainings)
    certified = sorted((course for course in person.trainings if course.certified and not course.subsidy_paid),
                       key=lambda course: (-course.days, course.year or 0, course.name))
    best = certified[0] if certified else None
    days = Decimal(best.days) if best else Decimal(0)
    amount = ctx.param("training.job_seeking_once") + ctx.param("training.daily_allowance") * days
    conditions = [ctx.registration(),
                  cond("holds a training certificate", best.name if best else None, best is not None),
                  cond("training subsidy not yet received (once per lifetime, L314)", already_paid, not already_paid),
                  cond("training days x daily allowance", days, True)]
    return entitlement("employment.training", person_id=person_id, conditions=conditions, amount=amount,
                       unit="once", period=str(best.year if best and best.year else ctx.as_of.year),
                       source=citation_of(ctx.policy, "training.job_seeking_once"))


def job_referral(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or not job.agency_referral:
        return None
    minimum = ctx.param("job_referral.min_consecutive_months")
    months = job.consecutive_months if job.consecutive_months is not None else job.months_worked
    conditions = [ctx.registration(), cond("placed by an HR agency with a labour contract", True, True),
                  cond(f"worked >= {minimum} consecutive months", months, months >= minimum)]
    return entitlement("employment.job_referral", person_id=person_id, conditions=conditions,
                       amount=ctx.param("job_referral.amount"), unit="once", period=calendar_year(ctx.as_of),
                       source=citation_of(ctx.policy, "job_referral.amount"))


def startup(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    job = person.employment
    if job is None or job.self_employed_months is None:
        return None
    minimum = ctx.param("startup.min_months")
    conditions = [ctx.registration(),
                  cond(f"business in the district running >= {minimum} months", job.self_employed_months,
                       job.self_employed_months >= minimum)]
    return entitlement("employment.startup", person_id=person_id, conditions=conditions,
                       amount=ctx.param("startup.amount"), unit="once", period=calendar_year(ctx.as_of),
                       source=citation_of(ctx.policy, "startup.amount"))


RULES = (
    ("employment.job_subsidy", job_subsidy),
    ("employment.workshop_subsidy", workshop_subsidy),
    ("employment.hiring_subsidy", hiring_subsidy),
    ("employment.transport", transport),
    ("employment.public_post", public_post),
    ("employment.training", training),
    ("employment.job_referral", job_referral),
    ("employment.startup", startup),
)
