"""Village exit assessments (贫困村退出评估): thin routes over villages/service.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from services.benefits.consumer import evaluation_date
from services.benefits.villages import service
from shared.auth import Principal, require_scopes
from shared.bounds import QueryDate
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["villages"], responses=PROBLEM_RESPONSES)
Reader = Depends(require_scopes("benefits:read"))
AsOf = Annotated[QueryDate | None, Query(description="Policy date; default: the benefits evaluation date")]


def village_not_found(code: str) -> Problem:
    return Problem(404, "村不存在 / Village not known to benefits",
                   f"benefits 没有村 {code} 的记录或农户 / benefits holds no record and no household of village {code}.")


@router.get("/v1/villages/assessments", summary="Village exit assessments of an area's villages (one page)")
async def list_village_assessments(
        request: Request, principal: Principal = Reader,
        area: Annotated[str | None, Query(pattern=r"^\d{2,12}$", description="Administrative code prefix")] = None,
        as_of: AsOf = None, cursor: Annotated[str | None, Query(pattern=r"^\d{1,16}$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """`{"as_of", "area", "items": [the per-village answer], "next_cursor"}`, villages in code order. A token
    limited to an area sees only villages under it, whatever `area` asks for (403 for another area)."""
    if principal.area and not principal.is_admin:
        if area is None or principal.area.startswith(area):
            area = principal.area
        elif not area.startswith(principal.area):
            raise Problem(403, "区域之外 / Outside your area",
                          f"令牌仅限区域 {principal.area} / Your token is limited to area {principal.area}.",
                          type_="https://jingzhun.dev/problems/forbidden")
    day = as_of or evaluation_date(request.app.state.settings)
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.area_assessments(session, area, day, request.app.state.packs,
                                                            cursor=cursor, limit=limit)
    return {"as_of": day.isoformat(), "area": area, "items": items, "next_cursor": next_cursor}


@router.get("/v1/villages/{code}/assessments", summary="The village's exit assessment (assessment.village_exit)")
async def village_assessments(request: Request, code: Annotated[str, Path(pattern=r"^\d{6,16}$")],
                              as_of: AsOf = None, principal: Principal = Reader) -> dict[str, Any]:
    """`{"village_code", "as_of", "village", "policy", "assessments": [kind village_exit], "not_assessed"}`.
    `not_assessed` says why there is no assessment (e.g. the pack in force has no village-exit standard)."""
    # Another area's village answers like an unknown one, so its existence is not confirmed.
    if not principal.sees_area(code):
        raise village_not_found(code)
    day = as_of or evaluation_date(request.app.state.settings)
    async with request.app.state.sessionmaker() as session:
        answer = await service.village_assessments(session, code, day, request.app.state.packs)
    if answer is None:
        raise village_not_found(code)
    return answer
