"""Ledger reads and verification."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.audit.ledger import service
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/audit", tags=["ledger"], responses=PROBLEM_RESPONSES)


@router.get("/records", summary="Ledger records, oldest first (ID numbers masked)")
async def records(request: Request, subject: str | None = Query(None, examples=["household/hh-nk-0001"]),
                  type: str | None = Query(None, examples=["entitlement.granted"]),
                  since: datetime | None = None, actor: str | None = None, cursor: int | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_records(session, subject=subject, type_=type, since=since,
                                                        actor=actor, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/verify", summary="Recompute every hash chain and report the first bad record")
async def verify(request: Request, principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    return await service.verify_ledger(request.app.state.sessionmaker, request.app.state.settings.hash_algorithm)
