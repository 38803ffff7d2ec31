"""Administrative areas and village work teams: thin; the work is in service.py."""
from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, UploadFile
from pydantic import Field

from services.registry.common import StrictBody
from services.registry.imports.limits import UploadLimits, check_archive, is_zip
from services.registry.villages import service
from shared.auth import Principal, require_scopes
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["areas"], responses=PROBLEM_RESPONSES)
Reader = Depends(require_scopes("registry:read"))
Writer = Depends(require_scopes("registry:write"))


class TeamBody(StrictBody):
    first_secretary: str | None = Field(default=None, description="第一书记 (cadre id)")
    team_leader: str | None = Field(default=None, description="驻村工作队队长 (cadre id)")
    members: list[str] = Field(default_factory=list, max_length=50, description="驻村工作队员 (cadre ids)")


@router.put("/v1/areas/{code}", summary="Create or replace an administrative area")
async def put_area(request: Request, code: str, body: service.AreaIn, principal: Principal = Writer) -> dict:
    if body.code != code:
        raise service.invalid(["body", "code"], "must equal the code in the path")
    async with transaction(request.app.state.sessionmaker) as session:
        outcome, area = await service.upsert_area(session, body, principal)
    return {**area, "outcome": outcome}


@router.patch("/v1/areas/{code}", summary="Change an area's name or flags (JSON merge patch)")
async def patch_area(request: Request, code: str, patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                     principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.patch_area(session, code, patch, principal)


@router.get("/v1/areas/{code}", summary="Read an area (villages include their work team)")
async def get_area(request: Request, code: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        area = await service.get_area(session, code, principal)
        if area["level"] == "village":
            area["work_team"] = await service.village_team_of(session, code)
    return area


@router.get("/v1/areas", summary="List areas (cursor pagination)")
async def list_areas(request: Request, parent_code: str | None = None, level: service.Level | None = None,
                     cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                     principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_areas(session, principal, parent_code=parent_code, level=level,
                                                      cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/v1/areas:bulk", summary="Load areas from a CSV or XLSX file (validated whole, all or nothing)")
async def bulk_areas(request: Request, file: UploadFile, principal: Principal = Writer) -> dict:
    data = await file.read()  # at most the route's body limit (JZ_BODY_LIMIT_ROUTES, 8 MiB)
    limits = UploadLimits.from_settings(request.app.state.settings)
    parsed_rows = await asyncio.to_thread(_parse_area_upload, data, file.filename, limits)  # never on the loop
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.load_areas(session, data, file.filename, principal, parsed_rows=parsed_rows)


def _parse_area_upload(data: bytes, filename: str | None, limits: UploadLimits):
    """An XLSX within the archive limits (at most 128 MiB unpacked for an area file), then its rows."""
    if is_zip(data[:4], filename):
        area_limits = replace(limits, max_unpacked_bytes=min(limits.max_unpacked_bytes, 128 << 20))
        check_archive(io.BytesIO(data), area_limits)
    return service.parse_area_rows(data, filename)


@router.put("/v1/villages/{code}/team", summary="Set the village's first secretary and work team")
async def put_team(request: Request, code: str, body: TeamBody, principal: Principal = Writer) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.set_village_team(session, code, body.first_secretary, body.team_leader, body.members,
                                              principal)
