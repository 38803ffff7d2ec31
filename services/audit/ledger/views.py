"""Ledger reads, verification, checkpoints, household history and entitlement statistics."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.audit.ledger import service
from services.audit.supervision.common import effective_area
from services.audit.supervision.progress import entitlement_stats
from services.audit.tables import audit_households
from shared.auth import Principal, require_scopes
from shared.bounds import IdCursor
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/audit", tags=["ledger"], responses=PROBLEM_RESPONSES)


def _household_not_found(household_id: str) -> Problem:
    return Problem(404, "Household not found", f"No records for household {household_id}.")


def _check_subject_area(principal: Principal, row, household_id: str) -> None:
    """A household outside the caller's area answers like an unknown one (its id is not confirmed)."""
    if row is not None and not principal.sees_area(row.village_code or row.region_code):
        raise _household_not_found(household_id)


@router.get("/records", summary="Ledger records, oldest first (ID numbers masked)")
async def records(request: Request, subject: str | None = Query(None, examples=["household/hh-nk-0001"]),
                  type: str | None = Query(None, examples=["entitlements.decided"]),
                  since: datetime | None = None, until: datetime | None = None, actor: str | None = None,
                  chain_id: str | None = None, cursor: IdCursor = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first (default); "
                                                                 "desc: newest first")] = "asc",
                  principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    if principal.area and not principal.is_admin:
        # An area-limited caller reads one household at a time, inside its area.
        if not (subject or "").startswith("household/"):
            raise Problem(403, "Area-limited caller", "With an area-limited token, filter by subject=household/{id}.",
                          type_="https://jingzhun.dev/problems/forbidden")
        async with request.app.state.sessionmaker() as session:
            row = (await session.execute(audit_households.select().where(
                audit_households.c.household_id == subject.split("/", 1)[1]))).first()
        household_id = subject.split("/", 1)[1]
        if row is None:
            raise _household_not_found(household_id)
        _check_subject_area(principal, row, household_id)
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_records(session, subject=subject, type_=type, since=since,
                                                        until=until, actor=actor, chain_id=chain_id,
                                                        cursor=cursor, limit=limit, newest_first=order == "desc")
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/verify", summary="Recompute every hash chain, check every record's source signature and every checkpoint; "
            "report the first bad record")
async def verify(request: Request, principal: Principal = Depends(require_scopes("audit:read")),
                 full: bool = Query(False, description="Check every record's signature again, also those a verified "
                                    "checkpoint attests (default: only records after the newest attestation; hashes "
                                    "and links are always recomputed from the first record) / 重新核验全部签名")) -> dict:
    settings = request.app.state.settings
    return await service.verify_ledger(request.app.state.sessionmaker, settings.hash_algorithm,
                                       service.trusted_keys(settings), full=full)


@router.post("/checkpoints", status_code=201, summary="Append a checkpoint committing to every chain head (admin)")
async def create_checkpoint(request: Request, principal: Principal = Depends(require_scopes("admin"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        record = await service.create_checkpoint(session, request.app.state.settings.hash_algorithm,
                                                 actor=principal.subject,
                                                 trusted=service.trusted_keys(request.app.state.settings))
    record.pop("recorded_at", None)
    return record


@router.get("/checkpoints", summary="Checkpoint records, oldest first (what outsiders anchor)")
async def checkpoints(request: Request, cursor: IdCursor = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_records(session, subject=None, type_=service.CHECKPOINT_TYPE,
                                                        since=None, actor=None, chain_id=service.CHECKPOINT_CHAIN,
                                                        cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/households/{household_id}/history",
            summary="Every decision about a household in event-time order: who, on what basis, still intact?")
async def household_history(request: Request, household_id: str, cursor: str | None = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                            principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        row = (await session.execute(audit_households.select().where(
            audit_households.c.household_id == household_id))).first()
        _check_subject_area(principal, row, household_id)
        if row is None and principal.area and not principal.is_admin:
            raise _household_not_found(household_id)
        items, next_cursor = await service.household_history(
            session, household_id, cursor=cursor, limit=limit,
            algorithm=request.app.state.settings.hash_algorithm)
    if not items and row is None:
        raise Problem(404, "Household not found", f"No records for household {household_id}.")
    current = None
    if row is not None:
        current = {"status": row.status, "version": row.version, "exit_date": row.exit_date,
                   "village_code": row.village_code, "exit_override": bool(row.exit_override),
                   "exit_steps": (row.exit_evidence or {}).get("steps", [])}
    return {"household_id": household_id, "current": current, "items": items, "next_cursor": next_cursor,
            "note": "intact = the record still matches its own hash; GET /v1/audit/verify checks the links "
                    "between records and against the checkpoints"}


@router.get("/stats/entitlements", summary="Entitlement counts and amounts by programme, area and period")
async def stats_entitlements(request: Request, area: str | None = None, program: str | None = None,
                             since: datetime | None = None, until: datetime | None = None,
                             area_level: Literal["county", "township", "village"] = "township",
                             period: Literal["year", "month"] = "year",
                             principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    area = effective_area(principal, area)
    async with request.app.state.sessionmaker() as session:
        return await entitlement_stats(session, area=area, since=since, until=until, area_level=area_level,
                                       period=period, program=program)
