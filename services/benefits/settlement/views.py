"""Insurer endpoints (scope ``settlement``): thin; the work is in service.py."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, model_validator

from services.benefits.credit.views import IdNumber, Ident, as_of
from services.benefits.partners.deps import partner_scope
from services.benefits.partners.service import decision_transaction
from services.benefits.settlement import service
from shared.auth import Principal
from shared.bounds import LedgerDate, NonNegativeMoney, PositiveMoney
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["settlement"], responses={**PROBLEM_RESPONSES, 429: {"description": "Rate limited"}})


class OneStopRequest(BaseModel):
    id_number: IdNumber
    admission_date: LedgerDate
    discharge_date: LedgerDate
    hospital_level: Literal[1, 2, 3]
    in_district: bool = Field(description="Designated hospital inside the district")
    # A stay that cost nothing is not a bill to settle; a negative cost is a bug on the insurer's side.
    total_cost: PositiveMoney = Field(examples=["20000.00"], description="More than 0")
    in_policy_cost: NonNegativeMoney = Field(examples=["18000.00"],
                                             description="Cost within the insurance catalogue")
    claim_id: Ident | None = Field(
        None, description="The insurer's claim id: resending it returns the first result and counts nothing "
                          "twice. Without it, an identical resend of the same bill is recognised instead.")

    @model_validator(mode="after")
    def _consistent(self) -> "OneStopRequest":
        if self.discharge_date < self.admission_date:
            raise ValueError("discharge_date is before admission_date")
        if self.total_cost < 0 or self.in_policy_cost < 0:
            raise ValueError("costs must not be negative")
        if self.in_policy_cost > self.total_cost:
            raise ValueError("in_policy_cost is above total_cost")
        return self


class Layer(BaseModel):
    name: str
    amount: str


class OneStopResponse(BaseModel):
    eligible: bool
    layers: list[Layer]
    patient_pays: str
    effective_ratio: str
    year_to_date_out_of_pocket: str | None
    settlement_id: str
    claim_id: str
    id_number: str = Field(description="Masked")
    reasons: list[str] = Field([], description="Empty when paid; else one of not_covered, not_in_district, "
                                                "deceased_before_admission, removed, post_exit_window_ended")
    coverage_judged_on: str | None = Field(None, description="The admission date: coverage is the person's "
                                                             "status on that day (先诊疗后付费, 001 L369)")
    policy: dict | None = None
    replayed: bool = False


@router.post("/v1/settlements/one-stop", response_model=OneStopResponse,
             summary="Settle one hospital stay across the four lines and the relief fund",
             description="Layers in order: basic_medical_insurance, critical_illness_insurance, "
                         "supplementary_illness_insurance, medical_assistance, special_relief_fund (tops up "
                         "to an actual 90%), high_out_of_pocket_relief (50% of the year's out-of-pocket above "
                         "10,000). Layers + patient_pays = total_cost. People not covered get `eligible: "
                         "false` and nothing else about them. Idempotent by `claim_id`.")
async def one_stop(request: Request, body: OneStopRequest,
                   principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    async with decision_transaction(request.app.state) as session:
        return await service.one_stop(session, principal, body.model_dump())


@router.get("/v1/settlements/roster", summary="Covered persons, and every change since the cursor",
            description="Start with no cursor: every covered person (masked ID number, coverage window, "
                        "category). Keep `next_cursor` and poll with it: you get each person whose coverage "
                        "changed since, with `covered: false` for those to drop. Every item carries `reason` "
                        "(registered, returned, exited; deceased, removed, post_exit_window_ended, "
                        "left_household, not_covered) and `effective_date`. To match persons to your "
                        "policyholders, use `POST /v1/settlements/coverage:lookup`.")
async def roster(request: Request, cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 500,
                 principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.roster_page(session, principal, int(cursor or 0), limit, as_of(request))


class CoverageLookup(BaseModel):
    id_numbers: list[IdNumber] = Field(min_length=1, max_length=500,
                                       description="Your policyholders' ID numbers (in the body, never the URL)")
    as_of: LedgerDate | None = Field(None, description="Coverage on this day (default: today)")


class CoverageItem(BaseModel):
    id_number_masked: str
    covered: bool
    reason: str = Field(description="Covered: registered, returned, exited (within the post-exit window). Not "
                                    "covered: deceased, removed, post_exit_window_ended, not_covered (unknown "
                                    "or never covered: nothing more is said)")
    effective_from: str | None = Field(None, description="Covered: start of the covered period. Not covered: "
                                                         "the day coverage ended")
    effective_to: str | None = Field(None, description="Covered: last covered day when known (post-exit window "
                                                       "end, death)")
    programme: str


class CoverageLookupResponse(BaseModel):
    as_of: str
    items: list[CoverageItem]
    submitted: int
    matched: int
    covered: int


@router.post("/v1/settlements/coverage:lookup", response_model=CoverageLookupResponse,
             summary="Match your policyholders: coverage of up to 500 ID numbers, in the order sent",
             description="The masked roster cannot be matched to your policyholders; this can. Send the ID "
                         "numbers you hold; benefits matches them by the keyed hash it keeps (it stores no "
                         "clear numbers, and keeps none of yours). Answers come back in the submitted order, "
                         "masked. Each call is recorded in the audit ledger with its counts.")
async def coverage_lookup(request: Request, body: CoverageLookup,
                          principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.coverage_lookup(session, principal, body.id_numbers, body.as_of or as_of(request))


@router.get("/v1/settlements", summary="Settlement records of this insurer, oldest first, by cursor")
async def records(request: Request, cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    while True:  # the settlements committed so far get their positions first, each batch committed
        async with decision_transaction(request.app.state) as session:
            if await service.sequence_settlements(session) < service.SEQUENCE_BATCH:
                break
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.records_page(session, principal, int(cursor or 0), limit)
