"""Poverty microcredit (扶贫小额信贷): eligibility and quarterly interest subsidy (001 L731-L747, 003 L367)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Sequence

from shared.money import ZERO, yuan
from shared.snapshot import Household
from services.benefits.rules.common import (
    Entitlement, RuleContext, citation_span, cond, entitlement, is_exited_household, registered_in_effect,
)


@dataclass(frozen=True)
class LoanRequest:
    amount: Decimal
    term_months: int
    purpose: str


@dataclass(frozen=True)
class MicroloanDecision:
    eligible: bool
    max_amount: Decimal
    max_term_months: int
    interest_subsidy_rate: Decimal
    collateral_required: bool
    county_pays_interest: bool
    reasons: list[str] = field(default_factory=list)


def labour_required(policy) -> bool:
    """Only packs whose seed asks for labour capacity set the condition (Qinzhou, 003 L367)."""
    return policy.param("credit.labour_capacities", None) is not None


def household_has_labour(household: Household, policy) -> bool:
    capacities = policy.param("credit.labour_capacities", None)
    if capacities is None:
        return True
    return any(person.labour_capacity in capacities for person in household.living_members())


def microloan_eligibility(household: Household | None, request: LoanRequest | None, policy, as_of: dt.date,
                          kind: str = "new") -> MicroloanDecision:
    """The one microcredit decision: the bank's answer and the office's ``credit.microloan``.

    ``kind`` is new, extension or renewal: exited households (脱贫户) borrow on equal terms
    for extension and renewal (001 L733) while the pack's post-exit window is open, not for
    a new loan. Without a ``request`` (the entitlement view) the amount, term and purpose
    checks are skipped and the answer is the credit line itself. Reasons are stable codes.
    """
    max_amount = policy.param("credit.max_amount")
    county_max = policy.param("credit.county_paid_max_amount", None)
    ceiling = county_max if county_max is not None else max_amount
    max_term = int(policy.param("credit.max_term_months"))
    subsidy_rate = policy.param("credit.interest_subsidy_rate")
    reasons = microloan_refusals(household, request, policy, as_of, ceiling, max_term, kind)
    eligible = not reasons
    return MicroloanDecision(
        eligible=eligible, max_amount=yuan(ceiling if eligible else ZERO), max_term_months=max_term if eligible else 0,
        interest_subsidy_rate=subsidy_rate if eligible else Decimal(0), collateral_required=False,
        county_pays_interest=eligible and request is not None and request.amount > max_amount, reasons=reasons,
    )


def microloan_refusals(household, request: LoanRequest | None, policy, as_of, ceiling, max_term,
                       kind: str = "new") -> list[str]:
    if household is None:
        return ["not_registered"]
    exited = is_exited_household(household)
    # Exited households stay in the programme's population (equal terms, 001 L733); removed,
    # candidate and marginal households never were in it, and learn nothing more.
    if household.status == "removed" or not (registered_in_effect(household, policy, as_of) or exited):
        return ["not_registered"]
    reasons = []
    if not household_has_labour(household, policy):
        reasons.append("no_labour_capacity")
    if request is not None:
        if request.amount <= 0 or request.amount > ceiling:
            reasons.append("amount_above_limit" if request.amount > ceiling else "amount_not_positive")
        if request.term_months <= 0 or request.term_months > max_term:
            reasons.append("term_above_limit" if request.term_months > max_term else "term_not_positive")
        if request.purpose in policy.param("credit.excluded_purposes"):
            reasons.append("purpose_excluded")
    if not policy.enabled("credit.microloan"):
        reasons.append("programme_not_available")
    if exited:
        if not registered_in_effect(household, policy, as_of):
            reasons.append("post_exit_window_closed")
        if kind == "new":
            reasons.append("exited_household_new_loan")
    return reasons


def quarter_bounds(year: int, quarter: int) -> tuple[dt.date, dt.date]:
    if quarter not in (1, 2, 3, 4):
        raise ValueError("quarter must be 1-4")
    start = dt.date(year, 3 * quarter - 2, 1)
    end = dt.date(year + 1, 1, 1) if quarter == 4 else dt.date(year, 3 * quarter + 1, 1)
    return start, end - dt.timedelta(days=1)


def outstanding_on(principal_schedule: Sequence[tuple[dt.date, Decimal]], day: dt.date) -> Decimal:
    """Principal outstanding at the end of `day`; the schedule lists (date, new outstanding) changes."""
    outstanding = ZERO
    for change_date, amount in sorted(principal_schedule):
        if change_date > day:
            break
        outstanding = amount
    return outstanding


def interest_subsidy(principal_schedule: Sequence[tuple[dt.date, Decimal]], rate: Decimal, quarter: tuple[int, int],
                     eligible_days: Sequence[tuple[dt.date, dt.date]] | None = None, *, day_count_basis: int = 360,
                     subsidy_share: Decimal = Decimal(1)) -> Decimal:
    """Interest subsidy for one loan and one quarter.

    principal_schedule: (date, outstanding principal from that date) pairs.
    rate: annual benchmark rate (0.0475). quarter: (year, 1..4).
    eligible_days: inclusive (start, end) periods the household was eligible; None = the whole quarter.
    Interest accrues daily on the outstanding principal at rate / day_count_basis.
    """
    start, end = quarter_bounds(*quarter)
    periods = eligible_days if eligible_days is not None else [(start, end)]
    daily_rate = Decimal(rate) / Decimal(day_count_basis)
    interest = ZERO
    day = start
    while day <= end:
        if any(first <= day <= last for first, last in periods):
            interest += outstanding_on(principal_schedule, day) * daily_rate
        day += dt.timedelta(days=1)
    return yuan(interest * subsidy_share)


def evaluate(ctx: RuleContext) -> list[Entitlement]:
    """``credit.microloan``: what a bank would answer for a new loan at the full credit line.

    The same ``microloan_eligibility`` decides both, so the office's view and the bank's
    answer agree for every household status.
    """
    if not ctx.enabled("credit.microloan"):
        return []
    household = ctx.household
    decision = microloan_eligibility(household, None, ctx.policy, ctx.as_of, kind="new")
    if decision.reasons == ["not_registered"]:
        return []  # not in the programme's population (candidate, marginal, removed)
    refused = set(decision.reasons)
    ceiling = ctx.param("credit.county_paid_max_amount", None) or ctx.param("credit.max_amount")
    conditions = [cond("registered, or exited (equal terms for extension and renewal, 001 L733)", household.status, True)]
    if labour_required(ctx.policy):
        conditions.append(cond("household has labour capacity", household_has_labour(household, ctx.policy),
                               "no_labour_capacity" not in refused))
    if is_exited_household(household):
        # The same window as every other policy (common.post_exit_window_open): Qinzhou's 2 years of support,
        # after which the tracking year gives guidance only (003 L387).
        conditions += [cond("post-exit policy window open", household.exit_date, "post_exit_window_closed" not in refused),
                       cond("a new loan: exited households only extend or renew (001 L733)", household.status,
                            "exited_household_new_loan" not in refused)]
    conditions.append(cond(f"credit line without collateral, interest subsidy {ctx.param('credit.interest_subsidy_rate')}"
                           " of the benchmark interest", ceiling, True))
    return [entitlement("credit.microloan", conditions=conditions, amount=decision.max_amount if decision.eligible
                        else ZERO, unit="term", period=f"{int(ctx.param('credit.max_term_months'))} months",
                        source=citation_span(ctx.policy, "credit.max_amount", "credit.county_paid_max_amount",
                                             "credit.max_term_months", "credit.interest_subsidy_rate",
                                             "credit.labour_capacities"))]
