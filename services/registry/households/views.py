"""Household endpoints: thin; the work is in service.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.households import service
from shared.auth import Principal, require_scopes
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.snapshot import NANKANG_FARMER_EXAMPLE, Category, Household, HouseholdCreate, HouseholdStatus
from shared.snapshot_examples import contract_examples

router = APIRouter(prefix="/v1/households", tags=["households"], responses=PROBLEM_RESPONSES)

HouseholdPage = dict[str, Any]

# What a caller who may not see clear numbers gets (docs/security.md, "Masking").
MASKED_MEMBERS = ("Callers without `admin` get each member's `id_number` masked (first 6 and last 4) and "
                  "`birth_year` instead of `birth_date`: the mask hides exactly the birth-date digits.")


def _snapshot_response(snapshot: dict, principal: Principal, status: int = 200,
                       headers: dict | None = None) -> JSONResponse:
    headers = {"ETag": f'"{snapshot["version"]}"', **(headers or {})}
    return JSONResponse(service.present(snapshot, principal), status_code=status, headers=headers)

# The contract's examples (docs/contract.md): the full one carries the facts that only some
# programmes read and that a client following API.md alone would never send.
CREATE_EXAMPLES = {
    "nankang_farmer": {"summary": "A Nankang farmer household (API.md)",
                       "value": {k: v for k, v in NANKANG_FARMER_EXAMPLE.items() if k not in ("id", "version")}},
    **{name: {"summary": f"docs/contract.md example: {name}", "value": body} for name, body in contract_examples().items()},
}


@router.post("", status_code=201, response_model=None,
             summary="Register a household (建档立卡)",
             description="The body is the household snapshot contract: every field, its unit and the programmes "
                         "that read it are in docs/contract.md and in each property's description.",
             responses={201: {"model": Household, "description": "The registered household. " + MASKED_MEMBERS},
                        409: {"description": "A member already lives in another household"}})
async def create_household(request: Request, body: Annotated[HouseholdCreate, Body(openapi_examples=CREATE_EXAMPLES)],
                           principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await service.create_household(session, body.model_dump(mode="json", exclude_unset=True),
                                                  principal)
    return _snapshot_response(snapshot, principal, 201, {"Location": f"/v1/households/{snapshot['id']}"})


@router.get("/{household_id}", response_model=None, summary="Read a household snapshot",
            responses={200: {"model": Household, "description": MASKED_MEMBERS}})
async def get_household(request: Request, household_id: str,
                        principal: Principal = Depends(require_scopes("registry:read"))) -> JSONResponse:
    async with request.app.state.sessionmaker() as session:
        snapshot = await service.load_household(session, household_id, principal)
    return _snapshot_response(snapshot, principal)


@router.patch("/{household_id}", response_model=None,
              summary="Change a household (JSON merge patch, RFC 7386)",
              openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {
                  "schema": {"type": "object"},
                  "example": {"income": {"year": 2020, "per_capita_net": "4200.00"},
                              "housing": {"safety_grade": "A"}}}}}},
              responses={200: {"model": Household, "description": MASKED_MEMBERS},
                         412: {"description": "If-Match does not name the current version"}})
async def patch_household(request: Request, household_id: str,
                          patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                          if_match: Annotated[str | None, Header(alias="If-Match")] = None,
                          principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await service.patch_household(session, household_id, patch, if_match, principal)
    return _snapshot_response(snapshot, principal)


@router.get("", summary="List households (cursor pagination)", description=MASKED_MEMBERS)
async def list_households(request: Request,
                          village_code: str | None = None, township_code: str | None = None,
                          region_code: str | None = None,
                          county_code: Annotated[str | None, Query(description="County code (= region_code)")] = None,
                          status: HouseholdStatus | None = None, category: Category | None = None,
                          cadre_id: Annotated[str | None, Query(description="Households paired with this cadre")] = None,
                          cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                          principal: Principal = Depends(require_scopes("registry:read"))) -> HouseholdPage:
    if county_code and region_code and county_code != region_code:
        raise Problem(422, "Conflicting filters", "county_code and region_code name the same field.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "county_code"], "msg": "differs from region_code"}])
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_households(
            session, principal, village_code=village_code, township_code=township_code,
            region_code=region_code or county_code, status=status, cursor=cursor, limit=limit,
            category=category, cadre_id=cadre_id)
    return {"items": [service.present(i, principal) for i in items], "next_cursor": next_cursor}
