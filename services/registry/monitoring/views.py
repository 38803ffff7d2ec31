"""Monitoring endpoints (防止返贫动态监测和帮扶): leads, monitoring objects, steps, measures, the plan.
Thin; the work is in leads.py, objects.py, plan.py and imports.py (docs/monitoring.md)."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.common import StrictBody, now_of, require_any_scope
from services.registry.monitoring import imports, leads, objects, plan
from services.registry.monitoring.machine import ACTIONS, CATEGORIES
from shared.auth import Principal, require_scopes
from shared.bounds import FreeText
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["monitoring"], responses=PROBLEM_RESPONSES)
Reader = Depends(require_scopes("registry:read"))
Writer = Depends(require_scopes("registry:write"))
LeadWriter = Depends(require_any_scope("visits:write", "registry:write"))
AreaCode = Annotated[str | None, Query(pattern=r"^\d{2,15}$", description="Administrative code prefix")]
Step = Literal["risk_warning", "home_verification", "household_commitment", "information_comparison",
               "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry",
               "propose_elimination", "township_confirmation", "county_confirmation"]
ObjectStatus = Literal["identifying", "monitored", "eliminating", "eliminated", "dismissed"]


class LeadBatch(StrictBody):
    leads: list[dict[str, Any]] = Field(min_length=1, max_length=leads.MAX_BATCH)


class DismissBody(StrictBody):
    reason: FreeText = Field(min_length=1, max_length=2000)


MEASURE_PATCH_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "status": {"type": "string", "enum": ["planned", "in_progress", "completed", "cancelled"]},
    "end_date": {"type": ["string", "null"], "format": "date"},
    "notes": {"type": ["string", "null"], "maxLength": 2000},
    "responsible": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Responsible unit or cadre"}}}


def _answer(status: int, body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if status == 200 else {})


@router.post("/v1/monitoring/leads", summary="Record a lead of return-to-poverty risk; idempotent by client_lead_id",
             responses={200: {"description": "Resend: the stored lead, nothing written"},
                        201: {"description": "Recorded (status open, or merged into the household's open case)"},
                        409: {"description": "client_lead_id already names another lead"}})
async def record_lead(request: Request, lead: leads.LeadIn, principal: Principal = LeadWriter) -> JSONResponse:
    status, body = await leads.record_lead(request.app.state.sessionmaker, leads.NewLead.from_input(lead), principal,
                                           now=now_of(request))
    return _answer(status, body)


@router.post("/v1/monitoring/leads:batch", summary=f"Record up to {leads.MAX_BATCH} leads; per-item results",
             description="Each item is recorded on its own: `status` 201 (recorded), 200 (resend: the stored lead) "
                         "or 4xx with `problem`. Resending a whole batch after a lost answer is safe.")
async def record_batch(request: Request, body: LeadBatch, principal: Principal = LeadWriter) -> dict:
    results = await leads.record_batch(request.app.state.sessionmaker, body.leads, principal, now=now_of(request))
    return {"items": results, "recorded": sum(r["status"] == 201 for r in results),
            "replayed": sum(r["status"] == 200 for r in results),
            "failed": sum(r["status"] >= 400 for r in results)}


PUSH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV (UTF-8 or GB18030) or XLSX"},
        "dry_run": {"type": "boolean", "default": False}}}},
    "application/json": {"schema": {"type": "object", "required": ["leads"], "properties": {
        "leads": {"type": "array", "items": {"type": "object"}, "description": "Rows as objects: household_id or "
                  "id_number, risk_causes (codes or 风险类型 words), reported_at, channel, department, notes, "
                  "head_name, client_lead_id"},
        "dry_run": {"type": "boolean", "default": False}}}}}}}


@router.post("/v1/monitoring/leads:import", summary="A department's push of leads (CSV/XLSX or JSON), all or nothing",
             openapi_extra=PUSH_BODY,
             responses={201: {"description": "Written; the report"}, 200: {"description": "Dry run; the report"},
                        422: {"description": "Any row wrong: the report with every error, nothing written"}})
async def import_leads(request: Request, principal: Principal = Writer) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Problem(422, "Invalid request", "Send the file as the multipart field `file`.",
                          type_="https://jingzhun.dev/problems/validation",
                          errors=[{"loc": ["body", "file"], "msg": "Field required"}])
        dry_run = str(form.get("dry_run", "false")).lower() in ("true", "1", "yes", "on")
        rows, header_errors = await imports.read_upload(await upload.read(), upload.filename)
    else:
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:
            raise Problem(422, "Invalid request", "The body is neither a multipart upload nor JSON "
                          "{\"leads\": [...]}.", type_="https://jingzhun.dev/problems/validation",
                          errors=[{"loc": ["body"], "msg": "not JSON"}]) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("leads"), list) or \
                set(payload) - {"leads", "dry_run"} or not isinstance(payload.get("dry_run", False), bool):
            raise Problem(422, "Invalid request", "The JSON body is {\"leads\": [...], \"dry_run\": false}.",
                          type_="https://jingzhun.dev/problems/validation",
                          errors=[{"loc": ["body", "leads"], "msg": "a list of leads is required"}])
        if len(payload["leads"]) > imports.MAX_ROWS:
            raise Problem(413, "Too many leads", f"At most {imports.MAX_ROWS} leads per push.",
                          type_="https://jingzhun.dev/problems/upload-too-large")
        dry_run, rows, header_errors = payload.get("dry_run", False), imports.json_rows(payload["leads"]), []
    status, report = await imports.push(request.app.state.sessionmaker, rows, header_errors, principal,
                                        now=now_of(request), dry_run=dry_run)
    return JSONResponse(report, status_code=status)


@router.get("/v1/monitoring/leads", summary="Leads, oldest first (cursor pages)")
async def list_leads(request: Request, household_id: str | None = None, status: leads.LeadStatus | None = None,
                     area: AreaCode = None, channel: leads.Channel | None = None,
                     older_than_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
                     cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await leads.list_leads(
            session, principal, household_id=household_id, status=status, area=area, channel=channel,
            older_than_days=older_than_days, now=now_of(request), cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/v1/monitoring/leads/{lead_id}", summary="One lead")
async def get_lead(request: Request, lead_id: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await leads.get_lead(session, lead_id, principal)


@router.post("/v1/monitoring/leads/{lead_id}/dismiss", summary="Dismiss an open lead (no risk found), with reason")
async def dismiss_lead(request: Request, lead_id: str, body: DismissBody, principal: Principal = Writer) -> dict:
    return await leads.dismiss_lead(request.app.state.sessionmaker, lead_id, body.reason, principal)


@router.get("/v1/monitoring/objects", summary="Monitoring objects, longest at their step first (cursor pages)")
async def list_objects(request: Request, category: Literal["unstable_exited", "marginal_at_risk",
                                                           "sudden_hardship"] | None = None,
                       step: Step | None = None, status: ObjectStatus | None = None, area: AreaCode = None,
                       household_id: str | None = None,
                       older_than_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
                       cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await objects.list_objects(
            session, principal, category=category, step=step, status=status, area=area, household_id=household_id,
            older_than_days=older_than_days, now=now_of(request), cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/v1/monitoring/objects", status_code=201, summary="Open a monitoring object from a lead",
             description=f"Categories: {', '.join(CATEGORIES)}.",
             responses={409: {"description": "The lead is not open, or the household already has an open case"}})
async def open_object(request: Request, body: objects.ObjectIn, principal: Principal = Writer) -> JSONResponse:
    view = await objects.open_object(request.app.state.sessionmaker, body, principal, now=now_of(request))
    return JSONResponse(view, status_code=201, headers={"Location": f"/v1/monitoring/objects/{view['id']}"})


@router.get("/v1/monitoring/objects/{object_id}", summary="A monitoring object with every step and measure")
async def get_object(request: Request, object_id: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await objects.get_object(session, object_id, principal)


@router.post("/v1/monitoring/objects/{object_id}/transitions", summary="Take a step of identification or "
             "risk elimination", description=f"Actions: {', '.join(ACTIONS)}.",
             responses={409: {"description": "Illegal step (lists allowed_actions), notice period running, "
                                             "separation of duties, or elimination criteria not met"},
                        503: {"description": "benefits unreachable for the elimination criteria; nothing changed"}})
async def take_step(request: Request, object_id: str, body: objects.StepIn, principal: Principal = Writer) -> dict:
    settings = request.app.state.settings
    return await objects.take_step(request.app.state.sessionmaker, object_id, body, principal, now=now_of(request),
                                   notice_period=timedelta(days=settings.monitoring_notice_days),
                                   benefits=request.app.state.benefits)


@router.post("/v1/monitoring/objects/{object_id}/measures", status_code=201,
             summary="Record an assistance measure of a monitoring object")
async def add_measure(request: Request, object_id: str, body: objects.MeasureIn,
                      principal: Principal = Writer) -> JSONResponse:
    result = await objects.add_measure(request.app.state.sessionmaker, object_id, body, principal,
                                       now=now_of(request))
    return JSONResponse(result, status_code=201)


@router.patch("/v1/monitoring/objects/{object_id}/measures/{measure_id}",
              summary="Change an assistance measure: status, end date, notes, responsible (JSON merge patch)",
              description="Status changes: planned → in_progress | cancelled, in_progress → completed | cancelled; "
                          "completed and cancelled are final.",
              openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {
                  "schema": MEASURE_PATCH_SCHEMA, "example": {"status": "completed", "end_date": "2020-12-31"}}}}},
              responses={409: {"description": "A status change the table does not allow (lists allowed), or the "
                                              "object is eliminated or dismissed"}})
async def update_measure(request: Request, object_id: str, measure_id: str,
                         patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                         principal: Principal = Writer) -> dict:
    return await objects.update_measure(request.app.state.sessionmaker, object_id, measure_id, patch, principal,
                                        now=now_of(request))


@router.get("/v1/monitoring/objects/{object_id}/plan", summary="The assistance plan: measures, checks and "
            "benefits' current entitlements")
async def get_plan(request: Request, object_id: str, principal: Principal = Reader) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await plan.read_plan(session, request.app.state.peers, object_id, principal,
                                    request.headers.get("authorization"))
