"""Bulk recompute jobs: start one for a scope, follow its progress."""
from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.benefits.consumer import evaluation_date
from services.benefits.recompute import service
from services.benefits.recompute.scope import Scope
from shared.auth import Principal, require_scopes
from shared.db import transaction
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["recompute"], responses=PROBLEM_RESPONSES)


class RecomputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"scope": {"kind": "region", "code": "360703"}, "as_of": "2020-06-30"}]})
    scope: Scope
    as_of: date | None = Field(None, description="Policy date; default: the service's evaluation date")
    batch_size: int = Field(service.DEFAULT_BATCH_SIZE, ge=1, le=5000)


@router.post("/v1/recompute", status_code=202, summary="Start a bulk recompute job (after a policy change)")
async def start_recompute(request: Request, body: RecomputeRequest,
                          principal: Principal = Depends(require_scopes("admin"))) -> JSONResponse:
    """Recomputes every household in scope in batches, emitting decisions only for what changed.
    Answers 202 with the job; follow it at `GET /v1/jobs/{id}`. A job interrupted by a restart
    resumes where it stopped."""
    as_of = body.as_of or evaluation_date(request.app.state.settings)
    packs = request.app.state.packs
    if not any(packs.spec(name).valid_on(as_of) for name in packs.names()):
        raise Problem(422, "Invalid request", f"No policy pack is valid on {as_of.isoformat()}.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body", "as_of"], "msg": "no policy pack is valid on this date"}])
    async with transaction(request.app.state.sessionmaker) as session:
        job = await service.create_job(session, body.scope, as_of, batch_size=body.batch_size,
                                       requested_by=principal.subject)
    request.app.state.jobs.start(job["id"])
    return JSONResponse(job, status_code=202, headers={"Location": f"/v1/jobs/{job['id']}"})


def visible_job(job: dict[str, Any] | None, job_id: str, principal: Principal) -> dict[str, Any]:
    """A job's area is its scope: an area-limited caller sees only jobs wholly inside its area (a job
    over ``all`` or another region answers 404 like an unknown one, so its id is not confirmed)."""
    if job is None or not (principal.is_admin or Scope.model_validate(job["scope"]).within(principal.area)):
        raise Problem(404, "Unknown job", f"No recompute job {job_id}.")
    return job


@router.get("/v1/jobs/{job_id}", summary="Progress of a recompute job")
async def get_job(request: Request, job_id: str,
                  principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    async with request.app.state.sessionmaker() as session:
        return visible_job(await service.get_job(session, job_id), job_id, principal)


@router.post("/v1/jobs/{job_id}/resume", status_code=202, summary="Resume a failed recompute job")
async def resume_job(request: Request, job_id: str,
                     principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
    async with transaction(request.app.state.sessionmaker) as session:
        job = visible_job(await service.get_job(session, job_id), job_id, principal)
        if job["status"] == "failed":
            await service.resume_failed_job(session, job_id)
        elif job["status"] == "done":
            raise Problem(409, "Job already done", "Start a new job to recompute again.")
    request.app.state.jobs.start(job_id)
    async with request.app.state.sessionmaker() as session:
        return await service.get_job(session, job_id)
