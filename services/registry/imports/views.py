"""Ledger import and export endpoints: thin; the work is in service.py."""
from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from services.registry.imports import ledger, service
from services.registry.imports.tabular import aiter_csv_text
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES
from shared.snapshot import HouseholdStatus

router = APIRouter(tags=["ledger"], responses=PROBLEM_RESPONSES)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.post("/v1/imports", summary="Import a household ledger (台账, CSV or XLSX)",
             description="The whole file is validated first. Any problem → 422 with `report.errors` "
                         "(`row`, `column`, `message` in Chinese and English; `sheet` for the extra sheets) and "
                         "nothing written, unless `skip_invalid` is set, which writes the valid households. "
                         "Headers that name no column are listed in `report.warnings` (with `strict`, they are "
                         "errors). `mode=update` matches households by 户编号 or the head's ID number and writes "
                         "changes as new versions; `report.results` says per household created / changed (with "
                         "`changed_paths`) / unchanged / conflict. `dry_run` validates only.",
             responses={201: {"description": "Written; the report"}, 200: {"description": "Dry run report"}})
async def import_ledger(request: Request, file: UploadFile, skip_invalid: Annotated[bool, Form()] = False,
                        dry_run: Annotated[bool, Form()] = False,
                        mode: Annotated[Literal["create", "update"], Form()] = "create",
                        strict: Annotated[bool, Form()] = False,
                        principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    data = await file.read()
    report = await service.import_ledger(request.app.state.sessionmaker, data, file.filename, principal,
                                         skip_invalid=skip_invalid, dry_run=dry_run, mode=mode, strict=strict)
    return JSONResponse(report, status_code=201 if report["written"] else 200,
                        headers={"Location": f"/v1/imports/{report['import_id']}"} if report["import_id"] else {})


@router.get("/v1/imports/{import_id}", summary="The report of an import that wrote households")
async def get_import(request: Request, import_id: str,
                     principal: Principal = Depends(require_scopes("registry:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await service.get_import(session, import_id)


@router.get("/v1/exports/households", summary="Export households in the ledger format (ID numbers masked "
                                              "unless the caller holds admin)",
            description="CSV: one sheet, machinery and trainings as JSON arrays in the columns 农机购置 and "
                        "培训记录. XLSX: the main sheet 台账 and the sheets 农机购置 and 培训记录. Both import "
                        "back to the same snapshots. Without `admin`, ID numbers are masked and 出生日期 holds "
                        "the birth year only (the mask hides exactly the birth-date digits).")
async def export_households(request: Request, format: Literal["csv", "xlsx"] = "csv",
                            village_code: str | None = None, township_code: str | None = None,
                            region_code: str | None = None, status: HouseholdStatus | None = None,
                            principal: Principal = Depends(require_scopes("registry:read"))):
    filters = {"village_code": village_code, "township_code": township_code, "region_code": region_code,
               "status": status}
    sessionmaker = request.app.state.sessionmaker
    if format == "csv":
        rows = service.export_rows(sessionmaker, principal, **filters)
        return StreamingResponse(aiter_csv_text(ledger.CSV_HEADER, rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="households.csv"'})
    buffer = io.BytesIO()
    await service.export_workbook(sessionmaker, principal, buffer, **filters)
    return StreamingResponse(iter([buffer.getvalue()]), media_type=XLSX,
                             headers={"Content-Disposition": 'attachment; filename="households.xlsx"'})
