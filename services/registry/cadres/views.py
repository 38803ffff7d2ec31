"""Cadre and pairing endpoints: thin; the work is in service.py."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.cadres import service
from services.registry.common import StrictBody
from shared.auth import Principal, require_scopes
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["cadres"], responses=PROBLEM_RESPONSES)
Reader = Depends(require_scopes("registry:read"))
Writer = Depends(require_scopes("registry:write"))


class PairingBody(StrictBody):
    cadre_id: str = Field(min_length=1, max_length=40)


@router.post("/v1/cadres", status_code=201, summary="Register a cadre")
async def create_cadre(request: Request, body: service.CadreIn, principal: Principal = Writer) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        cadre = await service.create_cadre(session, body, principal)
    return JSONResponse(cadre, status_code=201, headers={"Location": f"/v1/cadres/{cadre['id']}"})


@router.get("/v1/cadres/{cadre_id}", summary="Read a cadre")
async def get_cadre(request: Request, cadre_id: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await service.get_cadre(session, cadre_id, principal)


@router.patch("/v1/cadres/{cadre_id}", summary="Change a cadre (JSON merge patch)")
async def patch_cadre(request: Request, cadre_id: str,
                      patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                      principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.patch_cadre(session, cadre_id, patch, principal)


@router.get("/v1/cadres", summary="List cadres (cursor pagination)")
async def list_cadres(request: Request, unit: str | None = None, area_code: str | None = None,
                      cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_cadres(session, principal, unit=unit, area_code=area_code,
                                                       cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/v1/households/{household_id}/pairings", status_code=201, summary="Pair a cadre with a household")
async def pair(request: Request, household_id: str, body: PairingBody, principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.pair(session, household_id, body.cadre_id, principal)


@router.delete("/v1/households/{household_id}/pairings/{cadre_id}",
               summary="End a pairing (409 unless the household has exited: 不脱贫不脱钩)")
async def unpair(request: Request, household_id: str, cadre_id: str,
                 reason: Annotated[str | None, Query(max_length=2000)] = None, principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.unpair(session, household_id, cadre_id, reason, principal)


@router.get("/v1/households/{household_id}/pairings", summary="Pairings of a household, ended ones included")
async def household_pairings(request: Request, household_id: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        return {"items": await service.household_pairings(session, household_id, principal), "next_cursor": None}
