"""Policy packs in force (the files plus the publications): list, one pack fully resolved, and
the lifecycle of a new pack: validate → diff → simulate → publish (admin only)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.benefits.consumer import evaluation_date
from services.benefits.policy import service
from services.benefits.recompute.service import get_job
from shared.auth import Principal, require_scopes
from shared.bounds import IdCursor
from shared.policy.publication import diff_pack, pack_text_of
from shared.problems import PROBLEM_RESPONSES, Problem, no_policy_pack_problem

router = APIRouter(tags=["policies"], responses=PROBLEM_RESPONSES)

_EXAMPLE_PACK = """name: nankang-2021
version: "2021.1"
region: "360703"
valid_from: 2021-01-01
valid_to: 2025-12-31
extends: nankang-2020
parameters:
  crop_livestock.household_cap:
    value: 10000
    source: {seed: "001", lines: "L236"}
"""


class PackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pack": _EXAMPLE_PACK, "effective_from": "2021-01-01"}]})
    pack: str | dict[str, Any] = Field(description="The pack: YAML (or JSON) text as in a pack file, or an object")
    effective_from: date | None = Field(None, description="From this evaluation date on the publication governs; "
                                        "before it the previous version does")


class SimulateRequest(PackRequest):
    as_of: date | None = Field(None, description="Evaluation date; default: the effective date")


class PublishRequest(PackRequest):
    effective_from: date = Field(description="From this evaluation date on the publication governs; before it "
                                 "the previous version of the pack (or none, for a new pack) keeps governing")
    as_of: date | None = Field(None, description="Policy date of the recompute job; default: the service's "
                               "evaluation date")


def _rejected(exc: service.PublicationRejected) -> Problem:
    extra = {"errors": exc.problems} if exc.problems else {}
    return Problem(exc.status, exc.title, exc.detail, type_="https://jingzhun.dev/problems/policy-pack", **extra)


def _invalid(checked) -> Problem:
    return _rejected(service.PublicationRejected(
        422, "Invalid policy pack", f"政策包有 {len(checked.problems)} 处问题。/ The pack has "
        f"{len(checked.problems)} problem(s).", [problem.view() for problem in checked.problems]))


@router.post("/v1/policies:validate", summary="Check a pack: schema, programme codes, extends chain, dates, citations")
async def validate_policy(request: Request, body: PackRequest,
                          principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
    """Always 200 when the request is well formed: `valid` and every `problems` item (key, YAML line,
    message in Chinese and English). Checked against the packs in force, publications included."""
    return service.check(pack_text_of(body.pack), request.app.state.packs, body.effective_from).view()


@router.post("/v1/policies:diff", summary="What a pack changes against the pack in force of its name (or its parent)")
async def diff_policy(request: Request, body: PackRequest,
                      principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
    packs = request.app.state.packs
    checked = service.check(pack_text_of(body.pack), packs, body.effective_from)
    if not checked.ok:
        raise _invalid(checked)
    return diff_pack(checked.spec, packs, effective_from=body.effective_from)


@router.post("/v1/policies:simulate", summary="Deltas over the stored households of the pack's region (read-only)")
async def simulate_policy_pack(request: Request, body: SimulateRequest,
                               principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
    """Households affected, entitlements gained / lost / changed per programme and township, totals."""
    try:
        async with request.app.state.sessionmaker() as session:
            return await service.simulate_candidate(session, request.app.state.packs, pack_text_of(body.pack),
                                                    effective_from=body.effective_from, as_of=body.as_of)
    except service.PublicationRejected as exc:
        raise _rejected(exc) from None
    except LookupError as exc:
        raise no_policy_pack_problem(exc, ["body", "as_of"]) from None


@router.post("/v1/policies:publish", status_code=201, summary="Publish a pack with an effective date (admin)")
async def publish_policy(request: Request, body: PublishRequest,
                         principal: Principal = Depends(require_scopes("admin"))) -> JSONResponse:
    """Validated again, stored versioned, audited (`policy.published`), then a bulk recompute job for
    the pack's region starts: 201 with `publication` and `job` (follow it at `GET /v1/jobs/{id}`).
    The same pack (name, version, content, effective date) again answers 200 with the first
    publication; the same name and version with other content → 409."""
    settings = request.app.state.settings
    try:
        result = await service.publish(request.app.state.sessionmaker, request.app.state.packs,
                                       pack_text_of(body.pack), effective_from=body.effective_from,
                                       published_by=principal.subject,
                                       recompute_as_of=body.as_of or evaluation_date(settings))
    except service.PublicationRejected as exc:
        raise _rejected(exc) from None
    publication = result["publication"]
    if result["created"]:
        request.app.state.jobs.start(result["job"]["id"])
        job = result["job"]
    else:
        async with request.app.state.sessionmaker() as session:
            job = await get_job(session, publication["recompute_job_id"]) if publication["recompute_job_id"] else None
    return JSONResponse({"publication": publication, "job": job}, status_code=201 if result["created"] else 200,
                        headers={"Location": f"/v1/policies/publications/{publication['id']}"})


@router.get("/v1/policies/publications", summary="Publications, oldest first (cursor)")
async def list_publications(request: Request, pack: str | None = None, cursor: IdCursor = None,
                            limit: Annotated[int, Query(ge=1, le=500)] = 100,
                            principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.publications_page(session, pack=pack, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}


@router.get("/v1/policies/publications/{publication_id}", summary="One publication: text, spec, diff, who, when")
async def get_publication(request: Request, publication_id: Annotated[int, Path(ge=1, le=2**62)],
                          principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    async with request.app.state.sessionmaker() as session:
        found = await service.get_publication(session, publication_id)
    if found is None:
        raise Problem(404, "Unknown publication", f"没有第 {publication_id} 号发布。/ No publication {publication_id}.")
    return found


@router.get("/v1/policies", summary="Policy packs: region, validity, parent")
async def list_policies(request: Request, region: str | None = None, as_of: date | None = None,
                        principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    """With `region` and `as_of`, also names the pack that applies there on that date."""
    packs = request.app.state.packs
    body: dict[str, Any] = {"items": packs.list_packs(), "next_cursor": None}
    if region is not None and as_of is not None:
        try:
            body["applies"] = packs.resolve(region, as_of).policy_ref()
        except LookupError as exc:
            raise Problem(404, "No pack applies", str(exc)) from None
    return body


@router.get("/v1/policies/{pack}", summary="One pack with every parameter resolved up its chain")
async def get_policy(request: Request, pack: str,
                     principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    """Each parameter carries its value, `origin` (the pack in the chain that sets it) and
    `source` (seed and lines), or `default_not_in_seeds` with a note."""
    packs = request.app.state.packs
    if pack not in packs.names():
        raise Problem(404, "Unknown policy pack", f"No pack named {pack!r}; known: {', '.join(packs.names())}.")
    return packs.describe_pack(pack)
