"""Result types and helpers shared by the rule families.

Convention (documented choice): a family returns an entitlement for every programme
that *applies* to the household or person (the pack enables it and the subject is
in the programme's population, e.g. a student for education, a worker for
employment), with `eligible=False`, amount 0 and the failed condition in the
explanation when a condition fails. Programmes whose population the household is
not in are omitted. Removed households get nothing at all.
"""
from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from shared.money import ZERO, Money, yuan
from shared.policy.citations import span
from shared.policy.programs import KNOWN_PROGRAMS  # noqa: F401 - re-exported for the rule families
from shared.snapshot import Household, Person

Unit = Literal["once", "month", "year", "term", "claim"]



class Citation(BaseModel):
    model_config = ConfigDict(frozen=True)
    seed: str
    lines: str


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True)
    condition: str
    value: Any = None
    passed: bool


class DocumentCitation(BaseModel):
    """A source outside the seeds (post-2020 facts): the document, marked like a pack's
    ``default_not_in_seeds`` parameter, with the pack that holds the value and its note."""
    model_config = ConfigDict(frozen=True)
    document: str
    default_not_in_seeds: bool = True
    origin: str | None = None
    note: str | None = None


class Entitlement(BaseModel):
    model_config = ConfigDict(frozen=True)
    program: str
    person_id: str | None = None
    eligible: bool
    amount: Money = ZERO
    unit: Unit
    period: str
    explanation: list[Condition] = Field(default_factory=list)
    source: Citation | None = None


class Assessment(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: str
    result: bool
    unmet: list[str] = Field(default_factory=list)
    explanation: list[Condition] = Field(default_factory=list)
    source: Citation | DocumentCitation | None = None


_SCALARS = frozenset((str, int, bool, type(None)))


def plain(value: Any) -> Any:
    """Explanation values in JSON-friendly form (Decimal as text, never float)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value


# --- plain results for the engine's hot path -------------------------------------------------
#
# The pydantic models above are the API's schema. Building one per condition (about 80 per household)
# and dumping them again was a third of the engine's time, so while ``light_results()`` is on (the
# engine's ``evaluate_json``) the helpers below build plain slotted objects with the same attributes
# instead, and ``*_json`` turns them into exactly what ``model_dump(mode="json")`` of the models gives
# (same keys, same order, money as "0.00" text). Every other caller of the rules (credit, one-stop
# settlement, monitoring, tests) still gets the pydantic models.

_LIGHT: ContextVar[bool] = ContextVar("jz_engine_light_results", default=False)


def light_results() -> ContextVar[bool]:
    """The switch: ``token = light_results().set(True)`` ... ``light_results().reset(token)``."""
    return _LIGHT


def _json_value(value: Any) -> Any:
    """``value`` as pydantic's JSON mode serialises an ``Any`` field."""
    if type(value) in _SCALARS:
        return value
    if type(value) is list and all(type(item) in _SCALARS for item in value):
        return list(value)
    return to_jsonable_python(value)


class PlainCitation:
    __slots__ = ("seed", "lines")

    def __init__(self, seed: str, lines: str) -> None:
        self.seed, self.lines = seed, lines


class PlainDocumentCitation:
    __slots__ = ("document", "default_not_in_seeds", "origin", "note")

    def __init__(self, document: str, default_not_in_seeds: bool = True, origin: str | None = None,
                 note: str | None = None) -> None:
        self.document, self.default_not_in_seeds, self.origin, self.note = document, default_not_in_seeds, origin, note


class PlainCondition:
    __slots__ = ("condition", "value", "passed")

    def __init__(self, condition: str, value: Any, passed: bool) -> None:
        self.condition, self.value, self.passed = condition, value, passed


class PlainEntitlement:
    __slots__ = ("program", "person_id", "eligible", "amount", "unit", "period", "explanation", "source")

    def __init__(self, program, person_id, eligible, amount, unit, period, explanation, source) -> None:
        self.program, self.person_id, self.eligible, self.amount = program, person_id, eligible, amount
        self.unit, self.period, self.explanation, self.source = unit, period, explanation, source


class PlainAssessment:
    __slots__ = ("kind", "result", "unmet", "explanation", "source")

    def __init__(self, kind, result, unmet, explanation, source) -> None:
        self.kind, self.result, self.unmet, self.explanation, self.source = kind, result, unmet, explanation, source


def source_json(source: Any) -> dict[str, Any] | None:
    if source is None:
        return None
    if isinstance(source, (PlainDocumentCitation, DocumentCitation)):
        return {"document": source.document, "default_not_in_seeds": source.default_not_in_seeds,
                "origin": source.origin, "note": source.note}
    return {"seed": source.seed, "lines": source.lines}


def conditions_json(conditions) -> list[dict[str, Any]]:
    return [{"condition": item.condition, "value": _json_value(item.value), "passed": item.passed}
            for item in conditions]


def entitlement_json(item) -> dict[str, Any]:
    # ``entitlement`` stores the amount already rounded to the fen: its text is format_yuan's.
    return {"program": item.program, "person_id": item.person_id, "eligible": item.eligible,
            "amount": str(item.amount), "unit": item.unit, "period": item.period,
            "explanation": conditions_json(item.explanation), "source": source_json(item.source)}


def assessment_json(item) -> dict[str, Any]:
    return {"kind": item.kind, "result": item.result, "unmet": list(item.unmet),
            "explanation": conditions_json(item.explanation), "source": source_json(item.source)}


def cond(condition: str, value: Any, passed: bool) -> Condition:
    if _LIGHT.get():
        return PlainCondition(condition, plain(value), bool(passed))
    return Condition(condition=condition, value=plain(value), passed=bool(passed))


def cite(seed: str, lines: str) -> Citation:
    if _LIGHT.get():
        return PlainCitation(seed, lines)
    return Citation(seed=seed, lines=lines)


def document_citation(document: str, *, origin: str | None = None, note: str | None = None) -> DocumentCitation:
    if _LIGHT.get():
        return PlainDocumentCitation(document, True, origin, note)
    return DocumentCitation(document=document, origin=origin, note=note)


def _citation(source: dict | None, fallback):
    if not source:
        return fallback
    if _LIGHT.get():
        return PlainCitation(source["seed"], source["lines"])
    return Citation(**source)


#: (id(policy), parameters) -> (policy, joined citation): a resolved pack is immutable and a registry
#: keeps its resolved packs, so each pack's citations are joined once, not per household.
_SPANS: dict[tuple, tuple[Any, dict | None]] = {}
_SPANS_MAX = 20_000


def _span(policy, parameters: tuple[str, ...], joined: bool = True) -> dict | None:
    key = (id(policy), parameters, joined)
    found = _SPANS.get(key)
    if found is not None and found[0] is policy:
        return found[1]
    if len(_SPANS) >= _SPANS_MAX:
        _SPANS.clear()
    if joined:
        source = span(policy, *parameters)
    else:
        source = policy.source(parameters[0]) if policy.has(parameters[0]) else None
    _SPANS[key] = (policy, source)
    return source


def citation_of(policy, parameter: str, fallback: Citation | None = None) -> Citation | None:
    return _citation(_span(policy, (parameter,), joined=False), fallback)


def citation_span(policy, *parameters: str, fallback: Citation | None = None) -> Citation | None:
    """One citation covering the lines of every parameter an amount uses (same seed, ranges merged)."""
    return _citation(_span(policy, parameters), fallback)


def assessment(kind: str, *, result: bool, unmet: list[str], explanation: list[Condition],
               source: Citation | DocumentCitation | None) -> Assessment:
    if _LIGHT.get():
        return PlainAssessment(kind, bool(result), list(unmet), list(explanation), source)
    return Assessment(kind=kind, result=result, unmet=unmet, explanation=explanation, source=source)


def entitlement(program: str, *, conditions: list[Condition], amount: Decimal, unit: Unit, period: str,
                source: Citation | None, person_id: str | None = None) -> Entitlement:
    """Eligible iff every condition passed; an ineligible entitlement always carries 0."""
    eligible = all(item.passed for item in conditions)
    paid = yuan(max(amount, ZERO)) if eligible else ZERO
    if _LIGHT.get():
        return PlainEntitlement(program, person_id, eligible, paid, unit, period, list(conditions), source)
    return Entitlement(program=program, person_id=person_id, eligible=eligible, amount=paid, unit=unit,
                       period=period, explanation=conditions, source=source)


def capped(amount: Decimal, cap: Decimal | None) -> Decimal:
    return amount if cap is None else min(amount, cap)


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- status --------------------------------------------------------------------------

def post_exit_window_open(household: Household, policy, as_of: dt.date) -> bool:
    """Exited households keep their policies while the pack's post-exit window is open."""
    until = policy.param("post_exit_policy_until", None)
    if until is not None and as_of <= until:
        return True
    years = int(policy.param("post_exit_policy_years", Decimal(0)))
    if years > 0 and household.exit_date is not None:
        return as_of < _add_years(household.exit_date, years)
    return False


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def is_marginal_household(household: Household) -> bool:
    return "marginal" in household.categories and household.status in ("candidate", "monitored")


def is_exited_household(household: Household) -> bool:
    """Exited, or under monitoring after exit (a monitored household without category `marginal`)."""
    return household.status == "exited" or (household.status == "monitored" and "marginal" not in household.categories)


def registered_in_effect(household: Household, policy, as_of: dt.date) -> bool:
    """'Registered' of PROGRAMS.md: registered, returned (返贫), or exited within the window."""
    if household.status in ("registered", "returned"):
        return True
    return is_exited_household(household) and post_exit_window_open(household, policy, as_of)


def not_yet_exited(household: Household) -> bool:
    return household.status in ("registered", "returned")


def is_other_poor(household: Household) -> bool:
    """Poor but not registered: 低保, 特困 or marginal households (education's 'other poor')."""
    return bool({"dibao", "tekun_dispersed", "tekun_concentrated", "marginal"} & set(household.categories))


def registration_condition(household: Household, policy, as_of: dt.date) -> Condition:
    return cond("household registered (建档立卡, incl. returned and exited within the post-exit window)",
                household.status, registered_in_effect(household, policy, as_of))


def age_on(person: Person, day: dt.date) -> int | None:
    if person.birth_date is None:
        return None
    born = person.birth_date
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def person_key(person: Person, index: int) -> str:
    """Members without a registry id (what-if evaluation) are named by position."""
    return person.id if person.id else f"member-{index + 1}"


def school_year(as_of: dt.date) -> str:
    start = as_of.year if as_of.month >= 9 else as_of.year - 1
    return f"{start}/{start + 1}"


def calendar_year(as_of: dt.date) -> str:
    return str(as_of.year)


def calendar_month(as_of: dt.date) -> str:
    return as_of.strftime("%Y-%m")


class RuleContext:
    """What every rule needs, computed once per evaluation."""

    __slots__ = ("household", "policy", "as_of", "registered", "members", "income_history")

    def __init__(self, household: Household, policy, as_of: dt.date, income_history=None):
        self.household = household
        self.policy = policy
        self.as_of = as_of
        # Dated income observations of the household (assessments.IncomeObservation), for risk
        # elimination; None = a pure evaluation without history.
        self.income_history = income_history
        self.registered = registered_in_effect(household, policy, as_of)
        self.members = [
            (person_key(person, index), person)
            for index, person in enumerate(household.members) if not person.deceased
        ]

    def param(self, name: str, default: Any = ...) -> Any:
        return self.policy.param(name, default)

    def enabled(self, program: str) -> bool:
        return self.policy.enabled(program)

    def registration(self) -> Condition:
        return cond("household registered (建档立卡, incl. returned and exited within the post-exit window)",
                    self.household.status, self.registered)


def per_person(ctx: "RuleContext", rules, *, applies=lambda person: True) -> list[Entitlement]:
    """Run each enabled per-person rule for every member it applies to, in a stable order."""
    results: list[Entitlement] = []
    for person_id, person in ctx.members:
        if not applies(person):
            continue
        for program, rule in rules:
            if ctx.enabled(program):
                result = rule(ctx, person_id, person)
                if result is not None:
                    results.append(result)
    return results
