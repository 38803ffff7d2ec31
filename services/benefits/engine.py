"""The pure benefits engine: household snapshot + date (+ packs) -> entitlements and assessments.

No I/O. Deterministic: entitlements are sorted by (program, person_id) and
assessments by kind, and nothing depends on dict/set iteration of input data or
on the clock. Removed households (剔除) get no entitlements; their evaluation
carries only the policy reference.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.snapshot import Household
from shared.policy import PackRegistry, ResolvedPolicy, default_registry
from shared.policy.coverage import CoverageResult, coverage
from services.benefits.rules import assessments, credit, education, employment, health, housing, industry, safety_net
from services.benefits.rules.common import (
    Assessment, Entitlement, RuleContext, assessment_json, entitlement_json, light_results,
)

ENTITLEMENT_FAMILIES = (industry, employment, health, housing, education, safety_net, credit)


class LapsedPack(BaseModel):
    model_config = ConfigDict(frozen=True)
    pack: str
    valid_from: dt.date
    valid_to: dt.date | None


class PolicyRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    pack: str
    version: str
    chain: list[str]
    # The policy date the pack was chosen for; decision events carry it with the reference.
    as_of: dt.date
    coverage: Literal["local", "national_only"] = Field(
        description="local: a pack of the household's own region is valid on as_of; national_only: only the "
                    "national pack applies / 仅适用国家政策包")
    lapsed: LapsedPack | None = Field(
        None, description="With national_only: the most specific local pack out of its validity period on "
                          "as_of (null when the region never had one)")


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)
    as_of: dt.date = Field(description="The policy date this evaluation used / 评估所依据的政策日期")
    policy: PolicyRef
    entitlements: list[Entitlement] = Field(default_factory=list)
    assessments: list[Assessment] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def entitlement(self, program: str, person_id: str | None = None) -> Entitlement | None:
        return next((e for e in self.entitlements if entitlement_key(e) == (program, person_id)), None)

    def assessment(self, kind: str) -> Assessment | None:
        return next((a for a in self.assessments if a.kind == kind), None)


def entitlement_key(entitlement: Entitlement) -> tuple[str, str | None]:
    """Identity of an entitlement across evaluations, for diffing old and new results."""
    return (entitlement.program, entitlement.person_id)


def _sort_key(entitlement: Entitlement) -> tuple[str, str]:
    return (entitlement.program, entitlement.person_id or "")


def as_household(household: Household | dict) -> Household:
    return household if isinstance(household, Household) else Household.model_validate(household)


def _policy_ref(policy: ResolvedPolicy, as_of: dt.date, covered: CoverageResult | None) -> PolicyRef:
    if covered is None:
        covered = {"coverage": "local" if policy.spec.region else "national_only", "lapsed": None}
    return PolicyRef(pack=policy.pack, version=policy.version, chain=list(policy.chain), as_of=as_of,
                     coverage=covered["coverage"], lapsed=covered["lapsed"])


def _judge(household: Household, policy: ResolvedPolicy, as_of: dt.date, income_history) -> tuple[list, list]:
    """Every family's entitlements and the assessments, in the engine's order (pure)."""
    ctx = RuleContext(household, policy, as_of, income_history)
    found: list = []
    for family in ENTITLEMENT_FAMILIES:
        found.extend(family.evaluate(ctx))
    found.sort(key=_sort_key)
    judged = sorted(assessments.evaluate(ctx), key=lambda a: a.kind)
    return found, judged


def evaluate_with_policy(household: Household, policy: ResolvedPolicy, as_of: dt.date,
                         covered: CoverageResult | None = None, income_history=None) -> Evaluation:
    """``covered`` comes from the registry (``evaluate`` passes it); without one, only whether the
    resolved pack is local is known, and a national one is reported without its lapsed pack.
    ``income_history``: the household's dated income observations (risk elimination), if known."""
    reference = _policy_ref(policy, as_of, covered)
    if household.status == "removed":
        return Evaluation(as_of=as_of, policy=reference)
    found, judged = _judge(household, policy, as_of, income_history)
    return Evaluation(as_of=as_of, policy=reference, entitlements=found, assessments=judged)


def evaluate(household: Household | dict, as_of: dt.date, packs: PackRegistry | None = None,
             income_history=None) -> Evaluation:
    snapshot = as_household(household)
    registry = packs or default_registry()
    policy = registry.resolve(snapshot.region_code, as_of)
    return evaluate_with_policy(snapshot, policy, as_of, coverage(registry, snapshot.region_code, as_of),
                                income_history)


def evaluate_json(household: Household | dict, as_of: dt.date, packs: PackRegistry | None = None,
                  income_history=None) -> dict[str, Any]:
    """Exactly ``evaluate(...).model_dump(mode="json")`` (same keys in the same order, money as "0.00"
    text), without a pydantic object per condition: the rules build plain slotted objects while
    ``light_results`` is on and they are serialised once, here. tests/unit/benefits/test_evaluate_json.py
    compares the two over generated, demo and seed households."""
    snapshot = as_household(household)
    registry = packs or default_registry()
    policy = registry.resolve(snapshot.region_code, as_of)
    reference = _policy_ref(policy, as_of, coverage(registry, snapshot.region_code, as_of)).model_dump(mode="json")
    if snapshot.status == "removed":
        return {"as_of": as_of.isoformat(), "policy": reference, "entitlements": [], "assessments": []}
    switch = light_results()
    token = switch.set(True)
    try:
        found, judged = _judge(snapshot, policy, as_of, income_history)
    finally:
        switch.reset(token)
    return {"as_of": as_of.isoformat(), "policy": reference,
            "entitlements": [entitlement_json(item) for item in found],
            "assessments": [assessment_json(item) for item in judged]}


def evaluate_many(households: Iterable[Household | dict], as_of: dt.date,
                  packs: PackRegistry | None = None) -> Iterator[Evaluation]:
    """Lazy, so a bulk recompute can stream households without holding them all."""
    registry = packs or default_registry()
    for household in households:
        yield evaluate(household, as_of, registry)
