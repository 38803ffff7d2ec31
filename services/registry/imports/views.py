"""Ledger import and export endpoints: thin; the work is in service.py, run by jobs.py."""
from __future__ import annotations

import asyncio
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from services.registry.imports import jobs, ledger, service
from services.registry.imports.tabular import aiter_csv_text
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES
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
                         "`changed_paths`) / unchanged / conflict. `dry_run` validates only.\n\n"
                         "Every upload is a job: the file is streamed to a private temporary file and imported "
                         "by a worker thread (never on the event loop). A file up to `JZ_REGISTRY_IMPORT_SYNC_"
                         "MAX_BYTES` (16 MiB) without `Prefer: respond-async` is answered when the job is done, "
                         "with the report as before; otherwise the answer is 202 at once with the job and "
                         "`Location: /v1/imports/{id}`, which shows the state (queued, running, done, refused, "
                         "failed), rows done / total and, at the end, the outcome (the report or the problem). "
                         "Limits (413 problem+json, nothing written): the request body (`JZ_BODY_LIMIT_ROUTES`, "
                         "64 MiB), rows, the XLSX's unpacked size and compression ratio.",
             responses={201: {"description": "Written; the report"}, 200: {"description": "Dry run report"},
                        202: {"description": "Accepted as a job (large file or `Prefer: respond-async`)"},
                        413: {"description": "Body, rows, unpacked size or compression ratio over the limit"}})
async def import_ledger(request: Request, file: UploadFile, skip_invalid: Annotated[bool, Form()] = False,
                        dry_run: Annotated[bool, Form()] = False,
                        mode: Annotated[Literal["create", "update"], Form()] = "create",
                        strict: Annotated[bool, Form()] = False,
                        principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    import_jobs = jobs.import_jobs_of(request.app)
    path, size = await import_jobs.spool(file)
    options = {"skip_invalid": skip_invalid, "dry_run": dry_run, "mode": mode, "strict": strict}
    import_id, task = await import_jobs.submit(path, size, file.filename, principal, options)
    asked_async = "respond-async" in request.headers.get("prefer", "").lower()
    if asked_async or size > request.app.state.settings.import_sync_max_bytes:
        async with request.app.state.sessionmaker() as session:
            job = await import_jobs.status(session, import_id, principal)
        headers = {"Location": f"/v1/imports/{import_id}", "Retry-After": "1"}
        if asked_async:
            headers["Preference-Applied"] = "respond-async"
        return JSONResponse(job, status_code=202, headers=headers)
    status, body = await asyncio.shield(task)  # a client that hangs up does not stop the import
    if status >= 400:
        return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    return JSONResponse(body, status_code=status,
                        headers={"Location": f"/v1/imports/{body['import_id']}"} if body["import_id"] else {})


@router.get("/v1/imports/{import_id}", summary="An import job: state, progress, and its report or problem",
            description="`state` queued / running / done / refused / failed; `phase` reading / validating / "
                        "writing; `rows_done` of `rows_total` validated, `households_written` of "
                        "`households_total`. An import that wrote households answers its stored report as well. "
                        "Another area's import answers 404 to an area-limited caller.")
async def get_import(request: Request, import_id: str,
                     principal: Principal = Depends(require_scopes("registry:read"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await jobs.import_jobs_of(request.app).status(session, import_id, principal)


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
