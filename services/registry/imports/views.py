"""Ledger import and export endpoints: thin; the work is in service.py."""
from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from services.registry.imports import ledger, service
from services.registry.imports.tabular import aiter_csv_text, write_table
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES
from shared.snapshot import HouseholdStatus

router = APIRouter(tags=["ledger"], responses=PROBLEM_RESPONSES)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.post("/v1/imports", summary="Import a household ledger (台账, CSV or XLSX)",
             description="The whole file is validated first. Any problem → 422 with `report.errors` "
                         "(`row`, `column`, `message`) and nothing written, unless `skip_invalid` is set, "
                         "which writes the valid households. `dry_run` validates only.",
             responses={201: {"description": "Written; the report"}, 200: {"description": "Dry run report"}})
async def import_ledger(request: Request, file: UploadFile, skip_invalid: Annotated[bool, Form()] = False,
                        dry_run: Annotated[bool, Form()] = False,
                        principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    data = await file.read()
    report = await service.import_ledger(request.app.state.sessionmaker, data, file.filename, principal,
                                         skip_invalid=skip_invalid, dry_run=dry_run)
    return JSONResponse(report, status_code=201 if report["written"] else 200,
                        headers={"Location": f"/v1/imports/{report['import_id']}"} if report["import_id"] else {})


@router.get("/v1/imports/{import_id}", summary="The report of an import that wrote households")
async def get_import(request: Request, import_id: str,
                     principal: Principal = Depends(require_scopes("registry:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await service.get_import(session, import_id)


@router.get("/v1/exports/households", summary="Export households in the ledger format (ID numbers masked "
                                              "unless the caller holds admin)")
async def export_households(request: Request, format: Literal["csv", "xlsx"] = "csv",
                            village_code: str | None = None, township_code: str | None = None,
                            region_code: str | None = None, status: HouseholdStatus | None = None,
                            principal: Principal = Depends(require_scopes("registry:read"))):
    filters = {"village_code": village_code, "township_code": township_code, "region_code": region_code,
               "status": status}
    rows = service.export_rows(request.app.state.sessionmaker, principal, **filters)
    if format == "csv":
        return StreamingResponse(aiter_csv_text(ledger.HEADER, rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="households.csv"'})
    buffer = io.BytesIO()
    collected = [row async for row in rows]
    write_table(buffer, ledger.HEADER, collected, "xlsx")
    return StreamingResponse(iter([buffer.getvalue()]), media_type=XLSX,
                             headers={"Content-Disposition": 'attachment; filename="households.xlsx"'})
