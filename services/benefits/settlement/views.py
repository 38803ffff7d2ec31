"""Insurer endpoints (scope ``settlement``): thin; the work is in service.py."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, model_validator

from services.benefits.credit.views import IdNumber, Ident, as_of
from services.benefits.partners.deps import partner_scope
from services.benefits.settlement import service
from shared.auth import Principal
from shared.db import transaction
from shared.money import Money
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["settlement"], responses={**PROBLEM_RESPONSES, 429: {"description": "Rate limited"}})


class OneStopRequest(BaseModel):
    id_number: IdNumber
    admission_date: dt.date
    discharge_date: dt.date
    hospital_level: Literal[1, 2, 3]
    in_district: bool = Field(description="Designated hospital inside the district")
    total_cost: Money = Field(examples=["20000.00"])
    in_policy_cost: Money = Field(examples=["18000.00"], description="Cost within the insurance catalogue")
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
    reasons: list[str] = []
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
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.one_stop(session, principal, body.model_dump())


@router.get("/v1/settlements/roster", summary="Covered persons, and every change since the cursor",
            description="Start with no cursor: every covered person (masked ID number, coverage window, "
                        "category). Keep `next_cursor` and poll with it: you get each person whose coverage "
                        "changed since, with `covered: false` for those to drop.")
async def roster(request: Request, cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 500,
                 principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.roster_page(session, principal, int(cursor or 0), limit, as_of(request))


@router.get("/v1/settlements", summary="Settlement records of this insurer, oldest first, by cursor")
async def records(request: Request, cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  principal: Principal = Depends(partner_scope("settlement"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.records_page(session, principal, int(cursor or 0), limit)
