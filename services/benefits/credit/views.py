"""Bank endpoints (scope ``credit``): thin; the work is in service.py."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, Field, model_validator

from services.benefits.credit import service
from services.benefits.credit.purposes import CODES, PURPOSES, purposes_table_markdown
from services.benefits.partners.deps import partner_scope
from services.benefits.partners.service import decision_transaction
from shared.auth import Principal
from shared.bounds import MONEY_MAX, BoundedMoney, LedgerDate, PositiveMoney
from shared.clock import evaluation_date, today_in_china
from shared.config import BenefitsSettings
from shared.db import transaction
from shared.idcard import normalize_id_number
from shared.money import Money
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["credit"], responses={**PROBLEM_RESPONSES, 429: {"description": "Rate limited"}})

IdNumber = Annotated[str, AfterValidator(normalize_id_number),
                     Field(description="18-character resident ID number (GB 11643 check digit)",
                           examples=["360782197803180014"])]  # 钟大山 of hh-demo-0004 (demo data)
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]

PURPOSE_DESCRIPTION = (
    "Loan purpose, one of the codes below. The Chinese label and common Chinese or English wordings are "
    "accepted too (case, spaces and hyphens do not matter: `婚嫁`, `结婚` → `wedding`; `建房`, `盖房`, "
    "`house building` → `house_building`); the answer echoes the code. Anything else is 422 "
    "`unknown_purpose` with the accepted codes and labels. Whether a code is refused is the borrower's "
    "policy pack's `credit.excluded_purposes` (001 L747).\n\n" + purposes_table_markdown())
PURPOSE_SCHEMA = {"enum": list(CODES), "x-enum-descriptions": [f"{p.label_zh} / {p.label_en}" for p in PURPOSES]}


def as_of(request: Request) -> dt.date:
    """The policy date decisions are judged on (the demo's 2020-06-30 under the launcher)."""
    return evaluation_date(request.app.state.settings)


class EligibilityRequest(BaseModel):
    id_number: IdNumber
    amount: BoundedMoney = Field(examples=["50000.00"])
    term_months: int = Field(ge=1, le=600, examples=[36])
    purpose: str = Field(min_length=1, max_length=64, examples=["livestock"], description=PURPOSE_DESCRIPTION,
                         json_schema_extra=PURPOSE_SCHEMA)
    kind: Literal["new", "extension", "renewal"] = Field(
        "new", description="Exited households qualify only for extension and renewal, within the policy window")


class EligibilityResponse(BaseModel):
    eligible: bool
    max_amount: str
    max_term_months: int
    interest_subsidy_rate: str
    collateral_required: bool
    reasons: list[str]
    decision_id: str
    valid_until: str = Field(description="Last day the decision may be relied on: the day it was made (China "
                                         "time) plus JZ_BENEFITS_CREDIT_DECISION_VALID_DAYS, whatever `as_of`")
    as_of: str = Field(description="Policy date the decision was judged on (the evaluation date)")
    county_pays_interest: bool
    benchmark_rate: str
    id_number: str = Field(description="Masked")
    purpose: str = Field(description="The canonical purpose code the request's wording named",
                         json_schema_extra={"enum": list(CODES)})
    kind: str


@router.post("/v1/credit/eligibility", response_model=EligibilityResponse,
             summary="May this borrower have a poverty microloan of this amount, term and purpose?",
             description="Unknown or unregistered people get `eligible: false` with the single reason "
                         "`not_registered` (status 200). Reason codes: not_registered, no_labour_capacity, "
                         "amount_above_limit, amount_not_positive, term_above_limit, purpose_excluded, "
                         "post_exit_window_closed, exited_household_new_loan, programme_not_available. "
                         "The same decision gives the office's `credit.microloan` entitlement (a new loan at "
                         "the full credit line), so both agree for every household status. A purpose outside "
                         "the vocabulary is 422 `unknown_purpose`. Every call is recorded in the audit ledger.")
async def eligibility(request: Request, body: EligibilityRequest,
                      principal: Principal = Depends(partner_scope("credit"))) -> dict:
    settings: BenefitsSettings = request.app.state.settings
    async with decision_transaction(request.app.state) as session:
        return await service.eligibility(session, principal, body.model_dump(), as_of(request),
                                         settings.credit_decision_valid_days, today=today_in_china())


class LoanReport(BaseModel):
    report_id: Ident = Field(description="The bank's id for this report; resending it changes nothing")
    loan_id: Ident
    event: Literal["issuance", "repayment", "extension", "renewal", "default"]
    date: LedgerDate = Field(description="When it happened (issue, repayment, extension, renewal or default date)")
    id_number: IdNumber | None = Field(None, description="Borrower (issuance only)")
    # More than 0: a -30000.00 "loan" or a zero repayment is a bank's bug, refused before it is stored.
    amount: PositiveMoney | None = Field(None, description="Principal (issuance, renewal) or amount repaid "
                                                           "(repayment); more than 0")
    due_date: LedgerDate | None = Field(None, description="Maturity (issuance, renewal)")
    purpose: str | None = Field(None, min_length=1, max_length=64, description="Loan purpose (issuance). "
                                + PURPOSE_DESCRIPTION, json_schema_extra=PURPOSE_SCHEMA)
    new_due_date: LedgerDate | None = Field(None, description="Extended maturity (extension)")
    covid: bool = Field(False, description="COVID extension (2020: loans due on/after 2020-01-01, <= 6 months)")
    new_loan_id: Ident | None = Field(None, description="The new loan replacing this one (renewal)")
    decision_id: str | None = Field(None, max_length=40, description="Eligibility decision the loan relied on")

    @model_validator(mode="after")
    def _fields_for_event(self) -> "LoanReport":
        required = {"issuance": ("id_number", "amount", "due_date", "purpose"), "repayment": ("amount",),
                    "extension": ("new_due_date",), "renewal": ("new_loan_id", "amount", "due_date"),
                    "default": ()}[self.event]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"event {self.event} needs: {', '.join(missing)}")
        return self


@router.post("/v1/credit/loans", summary="Report a loan event: issuance, repayment, extension, renewal, default",
             description="Idempotent by `report_id`. Issuance records whether the loan qualifies for the "
                         "interest subsidy; a COVID extension is checked against the pack (001 L739); a "
                         "renewal closes the loan and opens `new_loan_id` for the same borrower.")
async def report_loan(request: Request, body: LoanReport,
                      principal: Principal = Depends(partner_scope("credit"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.report_loan(session, principal, body.model_dump())


class ClaimLine(BaseModel):
    loan_id: Ident
    claimed_amount: BoundedMoney


class InterestClaim(BaseModel):
    claim_id: Ident = Field(description="The bank's claim id; resending it returns the first decision")
    year: int = Field(ge=2014, le=2100)
    quarter: int = Field(ge=1, le=4)
    lines: list[ClaimLine] = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def total_within_range(self) -> "InterestClaim":
        # Each line is within range, 2,000 of them may not be: the claim's total is stored too.
        if sum(abs(line.claimed_amount) for line in self.lines) > MONEY_MAX:
            raise ValueError(f"申报金额合计超出上限 {MONEY_MAX} / the lines' amounts add up to more than {MONEY_MAX}")
        return self


@router.post("/v1/credit/interest-claims", summary="Quarterly interest-subsidy claim, decided line by line",
             description="Subsidy per loan = interest at the pack's benchmark rate (daily rate = rate/360) on "
                         "the outstanding principal for each day of the quarter the borrower's household was "
                         "eligible, within the loan term or a COVID extension. A line is `approved` when the "
                         "claimed amount is at most that subsidy, else `rejected` with a reason: "
                         "unknown_loan, loan_not_eligible, already_claimed, quarter_not_ended, "
                         "not_eligible_in_quarter, amount_exceeds_subsidy, amount_not_positive, duplicate_line.")
async def interest_claim(request: Request, body: InterestClaim,
                         principal: Principal = Depends(partner_scope("credit"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.interest_claim(session, principal, body.model_dump(), as_of(request),
                                            today=today_in_china())


@router.get("/v1/credit/interest-claims/totals", summary="Claimed and approved subsidy per bank and quarter",
            description="A bank sees its own totals; an administrator sees every bank.")
async def claim_totals(request: Request, year: Annotated[int | None, Query(ge=2014, le=2100)] = None,
                       quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
                       principal: Principal = Depends(partner_scope("credit"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return {"items": await service.claim_totals(session, principal, year, quarter), "next_cursor": None}
