"""Visit endpoints for the cadre app: thin; the work is in service.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.common import StrictBody, now_of, require_any_scope
from services.registry.visits import service
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["visits"], responses=PROBLEM_RESPONSES)
Visitor = Depends(require_scopes("visits:write"))


class VisitBatch(StrictBody):
    visits: list[dict[str, Any]] = Field(min_length=1, max_length=service.MAX_BATCH)


@router.post("/v1/visits", summary="Record a home visit (入户走访); idempotent by client_visit_id",
             responses={200: {"description": "Resend: the first result, nothing written"},
                        201: {"description": "Recorded"}})
async def record_visit(request: Request, visit: service.VisitIn, principal: Principal = Visitor) -> JSONResponse:
    status, result = await service.record_visit(request.app.state.sessionmaker, visit, principal, now=now_of(request))
    return JSONResponse(result, status_code=status, headers={"Idempotent-Replayed": "true"} if status == 200 else {})


@router.post("/v1/visits:batch", summary=f"Record up to {service.MAX_BATCH} visits; per-item results",
             description="Each item is recorded on its own: `status` 201 (recorded), 200 (resend: first result), "
                         "or 4xx with `problem`. Resending a whole batch after a lost response is safe.")
async def record_batch(request: Request, body: VisitBatch, principal: Principal = Visitor) -> dict:
    results = await service.record_batch(request.app.state.sessionmaker, body.visits, principal, now=now_of(request))
    return {"items": results, "recorded": sum(r["status"] == 201 for r in results),
            "replayed": sum(r["status"] == 200 for r in results),
            "failed": sum(r["status"] >= 400 for r in results)}


@router.get("/v1/households/{household_id}/visits", summary="Visits to a household, newest first")
async def list_visits(request: Request, household_id: str, cursor: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      principal: Principal = Depends(require_any_scope("registry:read", "visits:write"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_visits(session, household_id, principal, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}
