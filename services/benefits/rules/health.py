"""Health (健康扶贫): premiums, one-stop settlement (001 L367-L387, 002 L61-L65), nursing, rehab, chronic outpatient."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from pydantic import BaseModel

from shared.money import ZERO, Money, yuan
from shared.snapshot import Person
from services.benefits.rules.common import (
    per_person,
    Entitlement, RuleContext, age_on, calendar_month, calendar_year, citation_of, citation_span, cond, entitlement,
)

RATIO_QUANTUM = Decimal("0.0001")


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    return per_person(ctx, RULES)


def insurance_premium(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    """The year's individual contribution, paid by government: the seed's own amount where the
    pack's seed gives one for the year (Ganzhou 2016: 150, 000 L243), else the national figure."""
    if not ctx.registered:
        return None
    year = ctx.as_of.year
    amount, how, cited = premium_of_year(ctx.policy, year)
    conditions = [ctx.registration(),
                  cond("government pays the individual basic medical insurance contribution",
                       ctx.param("insurance_premium.full_subsidy"), ctx.param("insurance_premium.full_subsidy"))]
    population = ctx.param("insurance_premium.subsidised_persons", None)
    if population is not None:  # Qinzhou: 五保 and 低保 classes 1-2 only (003 L250)
        conditions.append(_premium_population(ctx, person_id, population))
        cited = (*cited, "insurance_premium.subsidised_persons")
    conditions.append(cond(f"individual contribution of {year}: {how}", amount, amount is not None))
    return entitlement("health.insurance_premium", person_id=person_id, conditions=conditions,
                       amount=amount or ZERO, unit="year", period=calendar_year(ctx.as_of),
                       source=citation_span(ctx.policy, *cited, "insurance_premium.full_subsidy"))


def _premium_population(ctx: RuleContext, person_id: str, population: dict):
    """Whether the person is one the pack subsidises: a 特困 (五保) person, or one in the household's 低保
    cover whose class (mapped by ``insurance_premium.dibao_class_of``) is listed."""
    from services.benefits.rules.safety_net import patient_safety_net  # the per-person 低保/特困 judgement
    in_dibao, tekun = patient_safety_net(ctx, person_id)
    class_of = ctx.param("insurance_premium.dibao_class_of", None) or {}
    dibao_class = class_of.get(ctx.household.dibao_class) if ctx.household.dibao_class else None
    classes = [int(c) for c in population.get("dibao_classes") or []]
    eligible_dibao = in_dibao and dibao_class is not None and int(dibao_class) in classes
    passed = (bool(population.get("tekun")) and tekun) or eligible_dibao
    label = ", ".join(f"class {c}" for c in classes)
    value = "特困 (五保)" if tekun else (f"低保 class {dibao_class}" if in_dibao else "neither 特困 nor 低保")
    return cond(f"a subsidised person: 特困 (五保) or 低保 {label}", value, passed)


def premium_of_year(policy, year: int) -> tuple[Decimal | None, str, tuple[str, ...]]:
    """(amount, how it was found, parameters it came from) for one calendar year."""
    local = policy.param("insurance_premium.local_individual_by_year", None) or {}
    if year in local:
        return local[year], "the pack's own figure", ("insurance_premium.local_individual_by_year",)
    national = policy.param("insurance_premium.individual_by_year")
    known = [known_year for known_year in national if known_year <= year]
    if not known:
        return None, "no figure for the year", ()
    used = max(known)
    how = "national figure" + ("" if used == year else f" of {used} (latest listed)")
    return national[used], how, ("insurance_premium.individual_by_year",)


def bedridden_nursing(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if not person.bedridden:
        return None
    conditions = [ctx.registration(), cond("recognised long-term bedridden (失能)", person.bedridden, True)]
    return entitlement("health.bedridden_nursing", person_id=person_id, conditions=conditions,
                       amount=ctx.param("bedridden_nursing.annual"), unit="year", period=calendar_year(ctx.as_of),
                       source=citation_of(ctx.policy, "bedridden_nursing.annual"))


def child_rehab(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if person.rehab_condition is None:
        return None
    age = age_on(person, ctx.as_of)
    max_age = ctx.param("child_rehab.max_age")
    poor = ctx.registered or bool({"dibao", "marginal", "tekun_dispersed"} & set(ctx.household.categories))
    cap = ctx.param("child_rehab.monthly_cap")[person.rehab_condition]
    months = ctx.param("child_rehab.max_months_per_year")
    conditions = [cond("poor family", ctx.household.status, poor),
                  cond(f"aged 0-{max_age}", age, age is not None and 0 <= age <= max_age),
                  cond(f"actual cost up to {cap} per month, at most {months} months a year", person.rehab_condition, True)]
    return entitlement("health.child_rehab", person_id=person_id, conditions=conditions, amount=cap, unit="month",
                       period=calendar_month(ctx.as_of), source=citation_of(ctx.policy, "child_rehab.monthly_cap"))


def chronic_outpatient(ctx: RuleContext, person_id: str, person: Person) -> Entitlement | None:
    if person.health != "chronic":
        return None
    ratio = ctx.param("chronic_outpatient.ratio")
    cap = ctx.param("chronic_outpatient.annual_cap")
    cost = person.chronic_outpatient_cost or ZERO
    conditions = [ctx.registration(), cond("chronic disease patient", person.health, True),
                  cond(f"{ratio} x reported outpatient cost, at most {cap} a year", cost, True)]
    return entitlement("health.chronic_outpatient", person_id=person_id, conditions=conditions,
                       amount=min(cost * ratio, cap), unit="year", period=calendar_year(ctx.as_of),
                       source=citation_of(ctx.policy, "chronic_outpatient.ratio"))


RULES = (
    ("health.insurance_premium", insurance_premium),
    ("health.bedridden_nursing", bedridden_nursing),
    ("health.child_rehab", child_rehab),
    ("health.chronic_outpatient", chronic_outpatient),
)


# --- one-stop settlement ---------------------------------------------------------------

class HospitalBill(BaseModel):
    admission_date: dt.date | None = None
    discharge_date: dt.date | None = None
    hospital_level: int = 1
    in_district: bool = True
    total_cost: Money
    in_policy_cost: Money


@dataclass(frozen=True)
class PersonContext:
    """What settlement needs to know about the patient (looked up by the caller)."""

    registered: bool
    dibao: bool = False
    tekun: bool = False


@dataclass(frozen=True)
class SettlementLayer:
    name: str
    amount: Decimal


@dataclass(frozen=True)
class SettlementResult:
    eligible: bool
    layers: list[SettlementLayer]
    patient_pays: Decimal
    effective_ratio: Decimal
    year_to_date_out_of_pocket: Decimal
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "eligible": self.eligible,
            "layers": [{"name": layer.name, "amount": str(layer.amount)} for layer in self.layers],
            "patient_pays": str(self.patient_pays),
            "effective_ratio": str(self.effective_ratio),
            "year_to_date_out_of_pocket": str(self.year_to_date_out_of_pocket),
        }


def _share(base: Decimal, ratio: Decimal) -> Decimal:
    return yuan(max(base, ZERO) * ratio)


def one_stop_settlement(bill: HospitalBill, person: PersonContext, policy, ytd_out_of_pocket: Decimal) -> SettlementResult:
    """Split one stay across the four lines and the relief fund (001 L369-L387).

    Each layer pays from what the previous ones left, never more than that, so
    layers + patient share = total cost by construction. The special relief fund
    lifts registered poor patients at designated in-district hospitals to the
    pack's actual-reimbursement target (90%), so their share is <= 10% of cost.
    """
    total = yuan(bill.total_cost)
    in_policy = min(yuan(bill.in_policy_cost), total)
    level = bill.hospital_level
    covered = person.registered and bill.in_district
    reasons = [] if covered else ["not a registered poor person at a designated in-district hospital"]

    waived = person.registered and Decimal(level) in policy.param("one_stop.deductible_waived_levels")
    deductible = ZERO if waived else yuan(policy.param("one_stop.basic_deductible").get(level, ZERO))
    basic = _share(in_policy - deductible, policy.param("one_stop.basic_ratio").get(level, ZERO))
    in_policy_left = in_policy - basic

    critical = _share(in_policy_left - policy.param("one_stop.critical_illness_deductible"),
                      policy.param("one_stop.critical_illness_ratio"))
    in_policy_left -= critical
    layers = [SettlementLayer("basic_medical_insurance", basic), SettlementLayer("critical_illness_insurance", critical)]

    if covered:
        supplementary = _share(in_policy_left, policy.param("one_stop.supplementary_ratio"))
        in_policy_left -= supplementary
        assistance = _share(in_policy_left, policy.param("one_stop.medical_assistance_ratio"))
        assistance_cap = policy.param("one_stop.medical_assistance_cap", None)
        if assistance_cap is not None:
            assistance = min(assistance, yuan(assistance_cap))
        layers += [SettlementLayer("supplementary_illness_insurance", supplementary),
                   SettlementLayer("medical_assistance", assistance)]
        patient = total - sum((layer.amount for layer in layers), ZERO)
        layers.append(SettlementLayer("special_relief_fund", _top_up(patient, total, policy)))
        patient = total - sum((layer.amount for layer in layers), ZERO)
        layers.append(SettlementLayer("high_out_of_pocket_relief", _high_oop_relief(patient, ytd_out_of_pocket, policy)))
    patient = total - sum((layer.amount for layer in layers), ZERO)
    ratio = ((total - patient) / total).quantize(RATIO_QUANTUM, rounding=ROUND_HALF_UP) if total > 0 else Decimal("0.0000")
    return SettlementResult(eligible=covered, layers=layers, patient_pays=patient, effective_ratio=ratio,
                            year_to_date_out_of_pocket=yuan(ytd_out_of_pocket + patient), reasons=reasons)


def _top_up(patient: Decimal, total: Decimal, policy) -> Decimal:
    target = policy.param("one_stop.target_ratio", None)
    if target is None:
        return ZERO
    # Round the allowed share down so the patient never pays a fen above (1 - target) of the bill.
    allowed = (total * (1 - target)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return max(patient - allowed, ZERO)


def _high_oop_relief(patient: Decimal, ytd_before: Decimal, policy) -> Decimal:
    threshold = policy.param("one_stop.high_oop_threshold", None)
    if threshold is None or patient <= 0:
        return ZERO
    above_before = max(ytd_before - threshold, ZERO)
    above_after = max(ytd_before + patient - threshold, ZERO)
    return min(_share(above_after - above_before, policy.param("one_stop.high_oop_ratio")), patient)
