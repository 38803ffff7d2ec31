"""Microcredit for partner banks: eligibility, loan reports, quarterly interest-subsidy claims.

The rules are the pure functions of ``rules/credit.py``; this module finds the
borrower (by keyed hash of the ID number), keeps the loans a bank reports, works
out the days of a quarter the borrower's household was eligible, and records every
decision with its access record in one transaction.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.credit.purposes import accepted_purposes, canonical_purpose
from shared.policy import resolve_pack
from services.benefits.partners.access import client_of, record_access
from services.benefits.partners.lookup import FoundPerson, find_person, id_hash, status_history, status_on
from services.benefits.partners.service import take_write_turn
from services.benefits.partners.tables import (credit_claim_lines, credit_claims, credit_decisions,
                                               credit_loan_events, credit_loans, credit_subsidies_paid)
from services.benefits.rules.common import post_exit_window_open
from services.benefits.rules.credit import (LoanRequest, interest_subsidy, microloan_eligibility, outstanding_on,
                                            quarter_bounds)
from services.benefits.tables import outbox
from shared.auth import Principal
from shared.config import TOPIC_BENEFITS
from shared.db import json_dumps
from shared.events import Envelope, utcnow
from shared.idcard import mask_id_number
from shared.money import ZERO, format_yuan, yuan
from shared.outbox import add_to_outbox
from shared.problems import Problem
from shared.snapshot import Household

log = logging.getLogger("benefits.credit")

SCOPE = "credit"


def body_hash(body: dict) -> str:
    return hashlib.sha256(json_dumps(body).encode()).hexdigest()


# --- eligibility -------------------------------------------------------------------------

@dataclass(frozen=True)
class CreditDecision:
    eligible: bool
    max_amount: Decimal
    max_term_months: int
    interest_subsidy_rate: Decimal
    benchmark_rate: Decimal
    county_pays_interest: bool
    reasons: list[str]


def policy_on(region_code: str, day: dt.date, field: str = "date"):
    """The policy pack in force for ``region_code`` on ``day``, or 422: a loan dated before
    (or after) every published pack has no rule to be judged by, and that is the caller's
    date, not a server error."""
    try:
        return resolve_pack(region_code, day)
    except LookupError:
        problem = _reject(422, "no_policy_in_force",
                          f"No credit policy is in force on {day.isoformat()} for this borrower's region.")
        problem.extra["errors"] = [{"loc": ["body", field], "msg": "no policy in force on this date",
                                    "type": "no_policy_in_force"}]
        raise problem from None


def decide(found: FoundPerson | None, request: LoanRequest, kind: str, as_of: dt.date,
           field: str = "date") -> CreditDecision:
    """Eligibility of a borrower for a new loan, an extension or a renewal, on ``as_of``.

    The rule is ``rules.credit.microloan_eligibility``, the same function that produces the
    office's ``credit.microloan`` entitlement; a deceased person is treated as unknown.
    """
    if found is None or found.person.get("deceased"):
        policy = policy_on("", as_of, field)
        household = None
    else:
        household = Household.model_validate(found.snapshot)
        policy = policy_on(household.region_code, as_of, field)
    decision = microloan_eligibility(household, request, policy, as_of, kind)
    eligible = decision.eligible
    return CreditDecision(
        eligible=eligible, max_amount=decision.max_amount, max_term_months=decision.max_term_months,
        interest_subsidy_rate=decision.interest_subsidy_rate,
        benchmark_rate=Decimal(policy.param("credit.benchmark_rate")) if eligible else Decimal(0),
        county_pays_interest=decision.county_pays_interest, reasons=list(decision.reasons))


def _person_ref(found: FoundPerson | None) -> dict | None:
    return {"household_id": found.household_id, "person_id": found.person_id} if found else None


def purpose_code(text: str | None) -> str:
    """The canonical code of a bank's purpose wording, or 422 listing the accepted codes."""
    code = canonical_purpose(text)
    if code is not None:
        return code
    listed = ", ".join(f"{p['code']} ({p['label_zh']}, {p['label_en']})" for p in accepted_purposes())
    raise Problem(422, "Unknown loan purpose / 未知贷款用途",
                  f"贷款用途“{text}”不在用途目录中，请使用以下代码之一。The purpose {text!r} is not in the "
                  f"vocabulary; use one of: {listed}.",
                  type_="https://jingzhun.dev/problems/credit/unknown_purpose", code="unknown_purpose",
                  errors=[{"loc": ["body", "purpose"], "msg": "unknown purpose", "type": "unknown_purpose"}],
                  accepted=accepted_purposes())


async def eligibility(session: AsyncSession, principal: Principal, body: dict, as_of: dt.date,
                      valid_days: int, *, today: dt.date) -> dict:
    """Judged under the policy of ``as_of``; valid for ``valid_days`` from ``today``, the real day the
    bank asks: a decision made now must not have expired already because the policy date is 2020."""
    body = {**body, "purpose": purpose_code(body["purpose"])}
    found = await find_person(session, body["id_number"])
    request = LoanRequest(amount=yuan(body["amount"]), term_months=body["term_months"], purpose=body["purpose"])
    decision = decide(found, request, body.get("kind", "new"), as_of)
    decision_id = str(uuid.uuid4())
    valid_until = today + dt.timedelta(days=valid_days)
    result = {"eligible": decision.eligible, "max_amount": format_yuan(decision.max_amount),
              "max_term_months": decision.max_term_months,
              "interest_subsidy_rate": str(decision.interest_subsidy_rate.quantize(Decimal("0.01"))),
              "collateral_required": False, "reasons": decision.reasons, "decision_id": decision_id,
              "valid_until": valid_until.isoformat(), "as_of": as_of.isoformat(),
              "county_pays_interest": decision.county_pays_interest,
              "benchmark_rate": str(decision.benchmark_rate), "id_number": mask_id_number(body["id_number"]),
              "purpose": body["purpose"], "kind": body.get("kind", "new")}
    request_view = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in body.items() if k != "id_number"}
    await take_write_turn(session)
    await session.execute(insert(credit_decisions).values(
        decision_id=decision_id, client_id=client_of(principal), id_masked=result["id_number"],
        household_id=found.household_id if found else None, person_id=found.person_id if found else None,
        request=request_view, result=result, as_of=as_of, valid_until=valid_until, created_at=utcnow()))
    await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/credit/eligibility",
                        id_number=body["id_number"], decision_id=decision_id,
                        decision="eligible" if decision.eligible else "not_eligible", person=_person_ref(found),
                        eligible=decision.eligible,
                        outcome={"max_amount": result["max_amount"], "reasons": decision.reasons,
                                 "purpose": body["purpose"], "kind": result["kind"]})
    return result


# --- loans -------------------------------------------------------------------------------

def subsidised_until(loan) -> dt.date:
    """Last day the subsidy runs: the loan term, or the COVID extension (001 L739)."""
    if loan.covid_extension and loan.extended_to is not None:
        policy = policy_on(loan.region_code or "", loan.due_on, "due_date")  # the rule of the year the loan fell due
        months = int(policy.param("credit.covid_extension_months", Decimal(0)))
        return min(loan.extended_to, _add_months(loan.due_on, months)) - dt.timedelta(days=1)
    return loan.due_on - dt.timedelta(days=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for candidate in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(day)


def loan_view(loan) -> dict:
    return {"loan_id": loan.loan_id, "status": loan.status, "id_number": loan.id_masked,
            "principal": format_yuan(loan.principal), "outstanding": format_yuan(loan.outstanding),
            "issued_on": loan.issued_on.isoformat(), "due_on": loan.due_on.isoformat(),
            "extended_to": loan.extended_to.isoformat() if loan.extended_to else None,
            "covid_extension": loan.covid_extension, "kind": loan.kind, "renewed_from": loan.renewed_from,
            "defaulted_on": loan.defaulted_on.isoformat() if loan.defaulted_on else None,
            "subsidy_eligible": loan.subsidy_eligible, "reasons": loan.reasons,
            "county_pays_interest": loan.county_pays_interest,
            "subsidised_until": subsidised_until(loan).isoformat() if loan.subsidy_eligible else None,
            "purpose": loan.purpose}


async def _loan(session: AsyncSession, client_id: str, loan_id: str, *, lock: bool = False):
    query = select(credit_loans).where(credit_loans.c.client_id == client_id, credit_loans.c.loan_id == loan_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).first()


def _reject(status: int, code: str, detail: str) -> Problem:
    return Problem(status, code.replace("_", " ").capitalize(), detail,
                   type_=f"https://jingzhun.dev/problems/credit/{code}", code=code)


async def _new_loan(session: AsyncSession, client_id: str, loan_id: str, *, id_number: str, found, amount: Decimal,
                    on: dt.date, due_on: dt.date, purpose: str, kind: str, renewed_from: str | None,
                    decision_id: str | None) -> None:
    if await _loan(session, client_id, loan_id) is not None:
        raise _reject(409, "loan_exists", f"Loan {loan_id} was already reported.")
    if due_on <= on:
        raise _reject(422, "due_before_issue", "The due date must be after the issue date.")
    term = (due_on.year - on.year) * 12 + due_on.month - on.month + (1 if due_on.day > on.day else 0)
    decision = decide(found, LoanRequest(amount, term, purpose), kind, on)
    now = utcnow()
    await session.execute(insert(credit_loans).values(
        client_id=client_id, loan_id=loan_id, id_hash=id_hash(id_number), id_masked=mask_id_number(id_number),
        household_id=found.household_id if found else None, person_id=found.person_id if found else None,
        region_code=found.region_code if found else None, principal=amount, outstanding=amount, issued_on=on,
        due_on=due_on, extended_to=None, covid_extension=False, purpose=purpose, kind=kind,
        renewed_from=renewed_from, status="active", defaulted_on=None, subsidy_eligible=decision.eligible,
        reasons=decision.reasons, county_pays_interest=decision.county_pays_interest, decision_id=decision_id,
        created_at=now, updated_at=now))


async def _event_row(session, client_id, report_id, loan_id, event, on, amount, outstanding, digest, result):
    await session.execute(insert(credit_loan_events).values(
        client_id=client_id, report_id=report_id, loan_id=loan_id, event=event, on=on, amount=amount,
        outstanding_after=outstanding, body_hash=digest, result=result, recorded_at=utcnow()))


async def report_loan(session: AsyncSession, principal: Principal, body: dict) -> dict:
    client_id = client_of(principal)
    digest = body_hash(body)
    if body.get("purpose") is not None:  # required for an issuance (the view checks)
        body = {**body, "purpose": purpose_code(body["purpose"])}
    stored = (await session.execute(select(credit_loan_events.c.body_hash, credit_loan_events.c.result)
                                    .where(credit_loan_events.c.client_id == client_id,
                                           credit_loan_events.c.report_id == body["report_id"]))).first()
    event, loan_id, on = body["event"], body["loan_id"], body["date"]
    if stored is not None:
        if stored.body_hash != digest:
            raise _reject(409, "report_id_reused", "This report_id was used for a different report.")
        result = stored.result
        access = _loan_access(event, result.get("loan"), result.get("new_loan"))
        access["decision"] = f"{access['decision']}:replayed"
        await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/credit/loans",
                            id_number=None, decision_id=body["report_id"], **access)
        return {**result, "replayed": True}
    found = None
    if event == "issuance":
        found = await find_person(session, body["id_number"])
        await _new_loan(session, client_id, loan_id, id_number=body["id_number"], found=found,
                        amount=yuan(body["amount"]), on=on, due_on=body["due_date"], purpose=body["purpose"],
                        kind="new", renewed_from=None, decision_id=body.get("decision_id"))
        loan = await _loan(session, client_id, loan_id)
        await _event_row(session, client_id, body["report_id"], loan_id, event, on, loan.principal,
                         loan.principal, digest, {})
    else:
        loan = await _loan(session, client_id, loan_id, lock=True)
        if loan is None:
            raise _reject(404, "unknown_loan", f"No loan {loan_id} reported by this bank.")
        if on < loan.issued_on:
            raise _reject(422, "before_issue", "The event date is before the loan was issued.")
        if loan.status != "active":
            raise _reject(409, "loan_closed", f"Loan {loan_id} is {loan.status}.")
        values: dict[str, Any] = {"updated_at": utcnow()}
        amount = None
        outstanding = Decimal(loan.outstanding)
        if event == "repayment":
            amount = yuan(body["amount"])
            if amount <= 0 or amount > outstanding:
                raise _reject(422, "repayment_above_outstanding",
                              f"Repayment must be positive and at most the outstanding {format_yuan(outstanding)}.")
            outstanding -= amount
            values.update(outstanding=outstanding, status="repaid" if outstanding == 0 else "active")
        elif event == "extension":
            await _check_extension(loan, body)
            values.update(extended_to=body["new_due_date"], covid_extension=bool(body.get("covid")))
        elif event == "default":
            values.update(status="defaulted", defaulted_on=on)
        elif event == "renewal":
            # 续贷 / 借新还旧: the old loan closes, a new one for the same borrower starts the same day.
            outstanding = ZERO
            values.update(outstanding=ZERO, status="renewed")
            new_id = body["new_loan_id"]
            await _renew_same_borrower(session, loan, new_id, body, await _found_for_loan(session, loan))
            renewed = await _loan(session, client_id, new_id)
            await _event_row(session, client_id, f"{body['report_id']}#new", new_id, "issuance", on,
                             renewed.principal, renewed.principal, digest, {})
        await session.execute(update(credit_loans).where(credit_loans.c.client_id == client_id,
                                                         credit_loans.c.loan_id == loan_id).values(**values))
        await _event_row(session, client_id, body["report_id"], loan_id, event, on, amount, outstanding, digest, {})
        loan = await _loan(session, client_id, loan_id)
    result = {"report_id": body["report_id"], "event": event, "loan": loan_view(loan)}
    if event == "renewal":
        result["new_loan"] = loan_view(await _loan(session, client_id, body["new_loan_id"]))
    await session.execute(update(credit_loan_events).where(credit_loan_events.c.client_id == client_id,
                                                           credit_loan_events.c.report_id == body["report_id"])
                          .values(result=result))
    access = _loan_access(event, result["loan"], result.get("new_loan"))
    await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/credit/loans", id_number=None,
                        decision_id=body["report_id"], person={"household_id": loan.household_id,
                                                               "person_id": loan.person_id}, **access)
    log.info("loan report %s %s", event, loan_id,
             extra={"fields": {"client_id": client_id, "loan_id": loan_id, "event": event,
                               "id_number": loan.id_masked}})
    return result


def _loan_access(event: str, loan: dict | None, new_loan: dict | None = None) -> dict:
    """The access record's decision for a loan report: an issuance is subsidised or refused."""
    if not loan:
        return {"decision": event}
    outcome = {"event": event, "loan_id": loan["loan_id"], "principal": loan["principal"],
               "outstanding": loan["outstanding"], "status": loan["status"],
               "subsidy_eligible": loan["subsidy_eligible"], "reasons": loan["reasons"]}
    if event == "issuance":
        return {"decision": "subsidised" if loan["subsidy_eligible"] else "refused",
                "eligible": loan["subsidy_eligible"], "outcome": outcome}
    if new_loan:  # renewal: the new loan's subsidy decision is the one that counts
        outcome["new_loan"] = {"loan_id": new_loan["loan_id"], "principal": new_loan["principal"],
                               "subsidy_eligible": new_loan["subsidy_eligible"], "reasons": new_loan["reasons"]}
        return {"decision": f"renewal:{'subsidised' if new_loan['subsidy_eligible'] else 'refused'}",
                "eligible": new_loan["subsidy_eligible"], "outcome": outcome}
    return {"decision": event, "outcome": outcome}


async def _found_for_loan(session: AsyncSession, loan) -> FoundPerson | None:
    from services.benefits.tables import household_snapshots
    if loan.household_id is None:
        return None
    snapshot = await session.scalar(select(household_snapshots.c.snapshot)
                                    .where(household_snapshots.c.household_id == loan.household_id))
    if snapshot is None:
        return None
    person = next((m for m in snapshot.get("members") or [] if m.get("id") == loan.person_id), None)
    return FoundPerson(loan.household_id, loan.person_id, snapshot, person) if person else None


async def _renew_same_borrower(session: AsyncSession, old, new_id: str, body: dict, found) -> None:
    """A renewal without an ID number: the new loan is the old borrower's."""
    if await _loan(session, old.client_id, new_id) is not None:
        raise _reject(409, "loan_exists", f"Loan {new_id} was already reported.")
    on, due_on, amount = body["date"], body["due_date"], yuan(body["amount"])
    if due_on <= on:
        raise _reject(422, "due_before_issue", "The due date must be after the issue date.")
    term = (due_on.year - on.year) * 12 + due_on.month - on.month + (1 if due_on.day > on.day else 0)
    # A loan reported before the vocabulary may carry free text: judge it by its code when it names one.
    purpose = body.get("purpose") or canonical_purpose(old.purpose) or old.purpose
    decision = decide(found, LoanRequest(amount, term, purpose), "renewal", on)
    now = utcnow()
    await session.execute(insert(credit_loans).values(
        client_id=old.client_id, loan_id=new_id, id_hash=old.id_hash, id_masked=old.id_masked,
        household_id=old.household_id, person_id=old.person_id, region_code=old.region_code, principal=amount,
        outstanding=amount, issued_on=on, due_on=due_on, extended_to=None, covid_extension=False,
        purpose=purpose, kind="renewal", renewed_from=old.loan_id, status="active",
        defaulted_on=None, subsidy_eligible=decision.eligible, reasons=decision.reasons,
        county_pays_interest=decision.county_pays_interest, decision_id=body.get("decision_id"),
        created_at=now, updated_at=now))


async def _check_extension(loan, body: dict) -> None:
    new_due = body["new_due_date"]
    current = loan.extended_to or loan.due_on
    if new_due <= current:
        raise _reject(422, "extension_not_later", "The new due date must be after the current one.")
    if body.get("covid"):
        policy = policy_on(loan.region_code or "", body["date"])
        months = int(policy.param("credit.covid_extension_months", Decimal(0)))
        due_from = policy.param("credit.covid_extension_due_from", None)
        if months <= 0 or due_from is None:
            raise _reject(422, "covid_extension_not_in_pack", "The borrower's policy pack has no COVID extension.")
        if loan.due_on < due_from:
            raise _reject(422, "covid_extension_due_too_early",
                          f"Only loans due on or after {due_from.isoformat()} may get the COVID extension.")
        if new_due > _add_months(loan.due_on, months):
            raise _reject(422, "covid_extension_too_long", f"The COVID extension is at most {months} months.")


# --- interest subsidy ----------------------------------------------------------------------

def _eligible_on(day: dt.date, history: list, region_code: str) -> bool:
    entry = status_on(history, day)
    if entry is None:
        return False
    if entry.status in ("registered", "returned"):
        return True
    if entry.status in ("exited", "monitored") and "marginal" not in (entry.categories or []):
        policy = policy_on(region_code, day, "quarter")
        household = _WindowView(entry.exit_date)
        return post_exit_window_open(household, policy, day)
    return False


@dataclass(frozen=True)
class _WindowView:
    exit_date: dt.date | None


def _periods(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    periods: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if periods and periods[-1][1] == day - dt.timedelta(days=1):
            periods[-1] = (periods[-1][0], day)
        else:
            periods.append((day, day))
    return periods


async def loan_quarter_subsidy(session: AsyncSession, loan, year: int, quarter: int) -> tuple[Decimal, int, list]:
    """(subsidy, eligible days, periods) for one loan and quarter."""
    start, end = quarter_bounds(year, quarter)
    last = subsidised_until(loan)
    if loan.defaulted_on is not None:
        last = min(last, loan.defaulted_on - dt.timedelta(days=1))
    events = (await session.execute(select(credit_loan_events.c.on, credit_loan_events.c.outstanding_after)
                                    .where(credit_loan_events.c.client_id == loan.client_id,
                                           credit_loan_events.c.loan_id == loan.loan_id)
                                    .order_by(credit_loan_events.c.on, credit_loan_events.c.id))).all()
    by_day: dict[dt.date, Decimal] = {}
    for event in events:
        by_day[event.on] = Decimal(event.outstanding_after)  # the day's last report wins
    schedule = sorted(by_day.items())
    history = await status_history(session, loan.household_id) if loan.household_id else []
    days = []
    day = max(start, loan.issued_on)
    while day <= min(end, last):
        if outstanding_on(schedule, day) > 0 and _eligible_on(day, history, loan.region_code or ""):
            days.append(day)
        day += dt.timedelta(days=1)
    if not days:
        return ZERO, 0, []
    policy = policy_on(loan.region_code or "", end, "quarter")  # a subsidised day had a pack; so has the quarter's end
    periods = _periods(days)
    amount = interest_subsidy(schedule, Decimal(policy.param("credit.benchmark_rate")),
                              (year, quarter), periods,
                              day_count_basis=int(policy.param("credit.day_count_basis", Decimal(360))),
                              subsidy_share=Decimal(policy.param("credit.interest_subsidy_rate")))
    return amount, len(days), periods


async def interest_claim(session: AsyncSession, principal: Principal, body: dict, as_of: dt.date, *,
                         today: dt.date) -> dict:
    """Lines judged on ``as_of`` (the policy date: has the quarter ended there?); the decision event
    says it was decided ``today``, the real day, and names ``as_of`` beside it."""
    client_id = client_of(principal)
    digest = body_hash(body)
    stored = (await session.execute(select(credit_claims.c.body_hash, credit_claims.c.result)
                                    .where(credit_claims.c.client_id == client_id,
                                           credit_claims.c.claim_id == body["claim_id"]))).first()
    if stored is not None:
        if stored.body_hash != digest:
            raise _reject(409, "claim_id_reused", "This claim_id was used for a different claim.")
        await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/credit/interest-claims",
                            decision_id=stored.result["decision_id"], decision="replayed",
                            **_claim_access(stored.result))  # _claim_access sets no decision
        return stored.result
    year, quarter = body["year"], body["quarter"]
    _, quarter_end = quarter_bounds(year, quarter)
    decision_id = str(uuid.uuid4())
    lines, seen = [], set()
    for number, line in enumerate(body["lines"], start=1):
        lines.append(await _claim_line(session, client_id, body["claim_id"], number, line, year, quarter,
                                       quarter_end, as_of, seen))
    total_claimed = sum((Decimal(l["claimed_amount"]) for l in lines), ZERO)
    total_approved = sum((Decimal(l["approved_amount"]) for l in lines), ZERO)
    result = {"claim_id": body["claim_id"], "decision_id": decision_id, "year": year, "quarter": quarter,
              "lines": lines, "total_claimed": format_yuan(total_claimed),
              "total_approved": format_yuan(total_approved),
              "approved_lines": sum(1 for l in lines if l["status"] == "approved"),
              "rejected_lines": sum(1 for l in lines if l["status"] == "rejected")}
    now = utcnow()
    await session.execute(insert(credit_claims).values(
        client_id=client_id, claim_id=body["claim_id"], decision_id=decision_id, year=year, quarter=quarter,
        body_hash=digest, total_claimed=total_claimed, total_approved=total_approved, result=result, created_at=now))
    await session.execute(insert(credit_claim_lines), [
        {"client_id": client_id, "claim_id": body["claim_id"], "line": l["line"], "loan_id": l["loan_id"],
         "year": year, "quarter": quarter, "claimed": Decimal(l["claimed_amount"]),
         "approved": Decimal(l["approved_amount"]), "status": l["status"], "reason": l["reason"],
         "payer": l["payer"]} for l in lines])
    envelope = Envelope(source="benefits", type="credit.interest_claim.decided",
                        subject=f"credit-claim/{decision_id}", time=now, actor=principal.subject,
                        data={**result, "client_id": client_id, "decided_on": today.isoformat(),
                              "as_of": as_of.isoformat()})
    await add_to_outbox(session, outbox, TOPIC_BENEFITS, client_id, envelope)
    await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/credit/interest-claims",
                        decision_id=decision_id,
                        decision=f"approved {result['approved_lines']}, rejected {result['rejected_lines']}",
                        **_claim_access(result))
    log.info("interest claim decided", extra={"fields": {"client_id": client_id, "claim_id": body["claim_id"],
                                                         "decision_id": decision_id,
                                                         "total_approved": result["total_approved"]}})
    return result


def _claim_access(result: dict) -> dict:
    """A claim is eligible when anything in it was approved; the outcome has the counts and totals."""
    return {"eligible": result["approved_lines"] > 0,
            "outcome": {key: result[key] for key in ("year", "quarter", "approved_lines", "rejected_lines",
                                                     "total_claimed", "total_approved")}}


async def _claim_line(session, client_id, claim_id, number, line, year, quarter, quarter_end, as_of, seen) -> dict:
    claimed = yuan(line["claimed_amount"])
    out = {"line": number, "loan_id": line["loan_id"], "claimed_amount": format_yuan(claimed),
           "status": "rejected", "approved_amount": "0.00", "computed_subsidy": None, "eligible_days": None,
           "reason": None, "payer": None}

    def reject(reason: str) -> dict:
        out["reason"] = reason
        return out

    if line["loan_id"] in seen:
        return reject("duplicate_line")
    seen.add(line["loan_id"])
    if quarter_end > as_of:
        return reject("quarter_not_ended")
    loan = await _loan(session, client_id, line["loan_id"])
    if loan is None:
        return reject("unknown_loan")
    out["payer"] = "county_finance" if loan.county_pays_interest else "poverty_fund"
    if not loan.subsidy_eligible:
        return reject("loan_not_eligible")
    paid = await session.scalar(select(credit_subsidies_paid.c.claim_id).where(
        credit_subsidies_paid.c.client_id == client_id, credit_subsidies_paid.c.loan_id == loan.loan_id,
        credit_subsidies_paid.c.year == year, credit_subsidies_paid.c.quarter == quarter))
    if paid is not None:
        return reject("already_claimed")
    computed, days, _ = await loan_quarter_subsidy(session, loan, year, quarter)
    out.update(computed_subsidy=format_yuan(computed), eligible_days=days)
    if days == 0:
        return reject("not_eligible_in_quarter")
    if claimed <= 0:
        return reject("amount_not_positive")
    if claimed > computed:
        return reject("amount_exceeds_subsidy")
    await session.execute(insert(credit_subsidies_paid).values(
        client_id=client_id, loan_id=loan.loan_id, year=year, quarter=quarter, claim_id=claim_id, amount=claimed))
    out.update(status="approved", approved_amount=format_yuan(claimed), reason="within_subsidy")
    return out


async def claim_totals(session: AsyncSession, principal: Principal, year: int | None, quarter: int | None) -> list:
    lines = credit_claim_lines.c
    query = (select(lines.client_id, lines.year, lines.quarter, func.count(func.distinct(lines.claim_id)).label("claims"),
                    func.sum(lines.claimed).label("claimed"), func.sum(lines.approved).label("approved"),
                    func.count().filter(lines.status == "approved").label("approved_lines"),
                    func.count().filter(lines.status == "rejected").label("rejected_lines"))
             .group_by(lines.client_id, lines.year, lines.quarter)
             .order_by(lines.year, lines.quarter, lines.client_id))
    if not principal.is_admin:
        query = query.where(lines.client_id == client_of(principal))
    if year is not None:
        query = query.where(lines.year == year)
    if quarter is not None:
        query = query.where(lines.quarter == quarter)
    rows = (await session.execute(query)).all()
    items = [{"client_id": r.client_id, "year": r.year, "quarter": r.quarter, "claims": r.claims,
              "approved_lines": r.approved_lines, "rejected_lines": r.rejected_lines,
              "total_claimed": format_yuan(Decimal(r.claimed or 0)),
              "total_approved": format_yuan(Decimal(r.approved or 0))} for r in rows]
    await record_access(session, principal, scope=SCOPE, endpoint="GET /v1/credit/interest-claims/totals",
                        decision="read")
    return items

