"""Procedure endpoints (identification, exit, return, removal, monitoring): thin; see service.py."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.common import StrictBody, now_of
from services.registry.households.service import present
from services.registry.workflows import service
from services.registry.workflows.machine import ACTIONS
from shared.auth import Principal, require_scopes
from shared.bounds import FreeText
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/households", tags=["procedures"], responses=PROBLEM_RESPONSES)


class TransitionBody(StrictBody):
    action: str = Field(min_length=1, max_length=32, description=f"One of: {', '.join(ACTIONS)}",
                        examples=["propose_exit"])
    reason: FreeText | None = Field(default=None, max_length=2000)
    override: bool = Field(default=False, description="propose/approve exit despite unmet criteria (needs reason)")
    as_of: date | None = Field(default=None, description="Policy date for the exit assessment (default today)")


@router.post("/{household_id}/transitions", summary="Take a procedure step (识别 / 退出 / 返贫 / 剔除 / 监测)",
             responses={409: {"description": "Illegal transition (lists allowed_actions), exit criteria unmet "
                                             "(lists unmet) or notice period running"},
                        412: {"description": "If-Match is stale"},
                        503: {"description": "benefits unreachable; nothing changed"}})
async def take_transition(request: Request, household_id: str, body: TransitionBody,
                          if_match: Annotated[str | None, Header(alias="If-Match")] = None,
                          principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    settings = request.app.state.settings
    result = await service.transition(
        request.app.state.sessionmaker, household_id,
        service.TransitionRequest(action=body.action, reason=body.reason, override=body.override, as_of=body.as_of),
        principal, now=now_of(request), notice_period=timedelta(days=settings.notice_period_days),
        benefits=request.app.state.benefits, if_match=if_match)
    result["household"] = present(result["household"], principal)
    return JSONResponse(result, headers={"ETag": f'"{result["household"]["version"]}"'})


@router.get("/{household_id}/procedure", summary="Procedure position, allowed actions and every step taken")
async def get_procedure(request: Request, household_id: str,
                        principal: Principal = Depends(require_scopes("registry:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await service.read_procedure(session, household_id, principal)
