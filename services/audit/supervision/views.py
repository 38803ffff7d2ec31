"""Supervision: anomalies, evaluation samples, progress against targets."""
from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.audit.supervision.anomalies import RULES, Context, find_anomalies
from services.audit.supervision.common import default_as_of, effective_area
from services.audit.supervision.progress import progress, village_incidence
from services.audit.supervision.sample import draw_sample, sample_csv, sample_xlsx
from shared.auth import Principal, require_scopes
from shared.bounds import YEAR_MAX, YEAR_MIN, IdCursor, QueryDate
from shared.problems import PROBLEM_RESPONSES, Problem


def attachment(filename: str) -> str:
    """A Content-Disposition for any file name: headers are Latin-1, and the name carries the caller's
    seed and area (a seed of "种子" or a quote made a 500), so an ASCII fallback plus RFC 6266 filename*."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


router = APIRouter(prefix="/v1/supervision", tags=["supervision"], responses=PROBLEM_RESPONSES)


@router.get("/anomalies", summary="Anomalies found by each rule, with evidence (ledger record and event ids)")
async def anomalies(request: Request, area: str | None = None, as_of: QueryDate | None = None,
                    rule: Annotated[list[str] | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
                    principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    unknown = sorted(set(rule or []) - set(RULES))
    if unknown:
        raise Problem(422, "Unknown rule", f"Known rules: {', '.join(RULES)}.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "rule"], "msg": f"unknown rule {u}"} for u in unknown])
    area = effective_area(principal, area)
    extras, settings = request.app.state.audit, request.app.state.settings
    ctx = Context(area=area, as_of=as_of or default_as_of(settings), no_visit_days=settings.no_visit_days,
                  lookup_grace_days=extras.lookup_grace_days, limit=limit,
                  monitoring_lead_days=extras.monitoring_lead_days,
                  monitoring_measure_grace_days=extras.monitoring_measure_grace_days)
    async with request.app.state.sessionmaker() as session:
        result = await find_anomalies(session, ctx, rule)
    result["rules"] = [{"code": r.code, "title": r.title, "title_en": r.title_en, "severity": r.severity,
                        "basis": r.basis} for r in RULES.values()]
    return result


@router.get("/sample", summary="Reproducible stratified sample of households that exited in a year (CSV/XLSX too)",
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument."
                                                          "spreadsheetml.sheet": {}}}})
async def sample(request: Request, year: Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX)], area: str | None = None,
                 n: Annotated[int, Query(ge=1, le=10000)] = 30,
                 seed: Annotated[str, Query(min_length=1, max_length=200)] = "0",
                 format: Literal["json", "csv", "xlsx"] = "json",
                 principal: Principal = Depends(require_scopes("audit:read"))):
    area = effective_area(principal, area)
    async with request.app.state.sessionmaker() as session:
        result = await draw_sample(session, area=area, year=year, n=n, seed=seed)
    name = f"sample-{area or 'all'}-{year}-seed{seed}"
    if format == "csv":
        return Response(sample_csv(result), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": attachment(f"{name}.csv")})
    if format == "xlsx":
        return Response(sample_xlsx(result),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": attachment(f"{name}.xlsx")})
    return result


@router.get("/progress", summary="Exits per year against the packs' targets; poverty incidence and exit "
                                 "indicators per village")
async def progress_view(request: Request, area: str | None = None, village_cursor: str | None = None,
                        village_limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                        principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    area = effective_area(principal, area)
    async with request.app.state.sessionmaker() as session:
        result = await progress(session, area)
        villages = await village_incidence(session, area, cursor=village_cursor, limit=village_limit)
    return {**result, "villages": villages["items"], "villages_next_cursor": villages["next_cursor"]}


@router.get("/partner-access", summary="Partner (bank, insurer) look-ups and deliveries, by client and by person")
async def partner_access(request: Request, client_id: str | None = None, household_id: str | None = None,
                         person_id: str | None = None, kind: Literal["lookup", "delivery", "other"] | None = None,
                         cursor: IdCursor = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    """ID numbers never appear in URLs: find a person by registry household/person id."""
    from services.audit.supervision.access import list_partner_access
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await list_partner_access(
            session, principal, client_id=client_id, household_id=household_id, person_id=person_id,
            kind=kind, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/monitoring", summary="The monitoring loop (防止返贫动态监测): objects by category, status and step, "
                                   "time from lead to identification and to first measure, overdue leads and "
                                   "objects without measures")
async def monitoring(request: Request, area: str | None = None, as_of: QueryDate | None = None,
                     cursor: str | None = None,
                     objects_cursor: Annotated[str | None, Query(description="cursor of the objects-without-"
                                                                             "measures list")] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     principal: Principal = Depends(require_scopes("audit:read"))) -> dict:
    from services.audit.monitoring.service import monitoring_report
    area = effective_area(principal, area)
    extras = request.app.state.audit
    async with request.app.state.sessionmaker() as session:
        return await monitoring_report(session, area=area, as_of=as_of or default_as_of(request.app.state.settings),
                                       lead_days=extras.monitoring_lead_days,
                                       grace_days=extras.monitoring_measure_grace_days, limit=limit, cursor=cursor,
                                       objects_cursor=objects_cursor)
