"""Evaluation and entitlement reads: thin; the work is in the engine and service.py."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.benefits.entitlements import service
from shared.auth import Principal, require_scopes
from shared.bounds import IdCursor
from shared.clock import evaluation_date
from shared.policy import default_registry
from shared.policy.coverage import coverage_of_pack
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.snapshot import NANKANG_FARMER_EXAMPLE, Household

router = APIRouter(tags=["entitlements"], responses=PROBLEM_RESPONSES)


class EvaluateRequest(BaseModel):
    household: Household
    as_of: date = Field(description="Policy date: the pack valid on this date applies")

    model_config = {"json_schema_extra": {"examples": [{"household": NANKANG_FARMER_EXAMPLE, "as_of": "2020-06-30"}]}}


@router.post("/v1/evaluate", summary="Evaluate a household under the policy in force (pure, stores nothing)")
async def evaluate(request: Request, body: EvaluateRequest,
                   principal: Principal = Depends(require_scopes("benefits:evaluate"))) -> dict[str, Any]:
    from services.benefits.engine import evaluate as run_engine
    try:
        return run_engine(body.household, body.as_of, getattr(request.app.state, "packs", None)).model_dump(mode="json")
    except LookupError as exc:  # no pack for this region and date: the input, not the service, is wrong
        raise Problem(422, "Invalid request", str(exc), type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body", "as_of"], "msg": str(exc)}]) from None


async def _visible(request: Request, household_id: str, principal: Principal) -> dict:
    async with request.app.state.sessionmaker() as session:
        result = await service.household_entitlements(session, household_id)
    # Outside the caller's area answers like an unknown household, so other areas' ids are not confirmed.
    if result is None or not principal.sees_area(result["area_code"]):
        raise Problem(404, "Household not known to benefits",
                      f"No registry event for {household_id} has been processed yet.")
    return result


@router.get("/v1/households/{household_id}/entitlements", summary="Current entitlements and assessments")
async def household_entitlements(request: Request, household_id: str,
                                 principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    result = await _visible(request, household_id, principal)
    area_code = result.pop("area_code")
    if result["policy"] is not None:  # rows know their pack, not their date: coverage on the evaluation date
        packs = getattr(request.app.state, "packs", None) or default_registry()
        result["policy"].update(coverage_of_pack(packs, result["policy"]["pack"], area_code,
                                                 evaluation_date(request.app.state.settings)))
    return result


@router.get("/v1/households/{household_id}/entitlements/history",
            summary="Every entitlement decision for the household, oldest first")
async def household_entitlement_history(request: Request, household_id: str, cursor: IdCursor = None,
                                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                                        principal: Principal = Depends(require_scopes("benefits:read"))) -> dict:
    await _visible(request, household_id, principal)
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.entitlement_history_page(session, household_id, cursor, limit)
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/v1/entitlements", summary="Current entitlements for offices, by programme and area")
async def list_entitlements(request: Request, program: str | None = None,
                            area: Annotated[str | None, Query(pattern=r"^\d{2,12}$",
                                                              description="Administrative code prefix")] = None,
                            cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                            principal: Principal = Depends(require_scopes("benefits:read"))) -> dict:
    """Ordered by household, programme and person; `next_cursor` continues the list. A token
    limited to an area sees only households under it, whatever `area` asks for."""
    if principal.area and not principal.is_admin:
        if area is None or principal.area.startswith(area):
            area = principal.area
        elif not area.startswith(principal.area):
            raise Problem(403, "Outside your area", f"Your token is limited to area {principal.area}.",
                          type_="https://jingzhun.dev/problems/forbidden")
    try:
        async with request.app.state.sessionmaker() as session:
            items, next_cursor = await service.entitlements_page(session, program=program, area=area,
                                                                 cursor=cursor, limit=limit)
    except service.BadCursor as exc:
        raise Problem(422, "Invalid request", str(exc), type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "cursor"], "msg": str(exc)}]) from None
    return {"items": items, "next_cursor": next_cursor}
