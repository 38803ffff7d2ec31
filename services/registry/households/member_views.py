"""Member endpoints: thin; the work is in members.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.common import StrictBody
from services.registry.households import members
from services.registry.households.service import present
from shared.auth import Principal, require_scopes
from shared.bounds import FreeText, LedgerDate
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES
from shared.snapshot import Relation

router = APIRouter(prefix="/v1/households", tags=["members"], responses=PROBLEM_RESPONSES)
IfMatch = Annotated[str | None, Header(alias="If-Match")]
Writer = Depends(require_scopes("registry:write"))


def _respond(snapshot: dict, principal: Principal, status: int = 200) -> JSONResponse:
    return JSONResponse(present(snapshot, principal), status_code=status, headers={"ETag": f'"{snapshot["version"]}"'})


class DeceasedBody(StrictBody):
    date_of_death: LedgerDate | None = None
    note: FreeText | None = Field(default=None, max_length=2000)


class MoveBody(StrictBody):
    to_household_id: str = Field(min_length=1, max_length=40)
    relation: Relation | None = Field(default=None, description="Relation to the new household's head")
    reason: FreeText | None = Field(default=None, max_length=2000)


@router.post("/{household_id}/members", status_code=201, summary="Add a member",
             responses={409: {"description": "The person lives in another household (named)"}})
async def add_member(request: Request, household_id: str, body: Annotated[Any, Body()], if_match: IfMatch = None,
                     principal: Principal = Writer) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await members.add_member(session, household_id, body, if_match, principal)
    return _respond(snapshot, principal, 201)


@router.patch("/{household_id}/members/{person_id}", summary="Change a member (JSON merge patch)")
async def change_member(request: Request, household_id: str, person_id: str,
                        patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                        if_match: IfMatch = None, principal: Principal = Writer) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await members.change_member(session, household_id, person_id, patch, if_match, principal)
    return _respond(snapshot, principal)


@router.post("/{household_id}/members/{person_id}/deceased", summary="Record a member's death")
async def mark_deceased(request: Request, household_id: str, person_id: str, body: DeceasedBody,
                        if_match: IfMatch = None, principal: Principal = Writer) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await members.mark_deceased(session, household_id, person_id, body.date_of_death, body.note,
                                               if_match, principal)
    return _respond(snapshot, principal)


@router.post("/{household_id}/members/{person_id}/move",
             summary="Move a member to another household (one person.moved event per household)")
async def move_member(request: Request, household_id: str, person_id: str, body: MoveBody,
                      if_match: IfMatch = None, principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        source, target = await members.move_member(session, household_id, person_id, body.to_household_id,
                                                   body.relation, body.reason, if_match, principal)
    return {"from": present(source, principal), "to": present(target, principal)}
