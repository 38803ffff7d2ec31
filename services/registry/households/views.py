"""Household endpoints: thin; the work is in service.py."""
from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.common import StrictBody
from services.registry.households import service
from shared.auth import Principal, require_scopes
from shared.db import transaction
from shared.idcard import InvalidIdNumber, validate_id_number
from shared.personal_data import identity_hasher
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.snapshot import NANKANG_FARMER_EXAMPLE, Category, Household, HouseholdCreate, HouseholdStatus
from shared.snapshot_examples import contract_examples

router = APIRouter(prefix="/v1/households", tags=["households"], responses=PROBLEM_RESPONSES)

HouseholdPage = dict[str, Any]
access_log = logging.getLogger("registry.access")

VIEW_DOC = ("`summary`: id, version, status, village, categories, the head's name and masked ID number and the "
            "member count instead of full snapshots (a 500-household page: 0.20 MB instead of 1.49 MB); `full` (default): snapshots.")
FIELDS_DOC = ("Comma-separated top-level snapshot fields to return, e.g. `status,income,village` (`id` always); "
              "masked as the full snapshot. Not with `view=summary`.")

# What a caller who may not see clear numbers gets (docs/security.md, "Masking").
MASKED_MEMBERS = ("Callers without `admin` get each member's `id_number` masked (first 6 and last 4) and "
                  "`birth_year` instead of `birth_date`: the mask hides exactly the birth-date digits.")


def _snapshot_response(snapshot: dict, principal: Principal, status: int = 200,
                       headers: dict | None = None) -> JSONResponse:
    headers = {"ETag": f'"{snapshot["version"]}"', **(headers or {})}
    return JSONResponse(service.present(snapshot, principal), status_code=status, headers=headers)

# The contract's examples (docs/contract.md): the full one carries the facts that only some
# programmes read and that a client following API.md alone would never send.
CREATE_EXAMPLES = {
    "nankang_farmer": {"summary": "A Nankang farmer household (API.md)",
                       "value": {k: v for k, v in NANKANG_FARMER_EXAMPLE.items() if k not in ("id", "version")}},
    **{name: {"summary": f"docs/contract.md example: {name}", "value": body} for name, body in contract_examples().items()},
}


@router.post("", status_code=201, response_model=None,
             summary="Register a household (建档立卡)",
             description="The body is the household snapshot contract: every field, its unit and the programmes "
                         "that read it are in docs/contract.md and in each property's description.",
             responses={201: {"model": Household, "description": "The registered household. " + MASKED_MEMBERS},
                        409: {"description": "A member already lives in another household"}})
async def create_household(request: Request, body: Annotated[HouseholdCreate, Body(openapi_examples=CREATE_EXAMPLES)],
                           principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    async with service.single_statement_session(request.app.state.sessionmaker) as session:
        snapshot = await service.create_household(session, body.model_dump(mode="json", exclude_unset=True),
                                                  principal)
    return _snapshot_response(snapshot, principal, 201, {"Location": f"/v1/households/{snapshot['id']}"})


@router.get("/{household_id}", response_model=None, summary="Read a household snapshot",
            responses={200: {"model": Household, "description": MASKED_MEMBERS}})
async def get_household(request: Request, household_id: str,
                        principal: Principal = Depends(require_scopes("registry:read"))) -> JSONResponse:
    async with request.app.state.sessionmaker() as session:
        snapshot = await service.load_household(session, household_id, principal)
    return _snapshot_response(snapshot, principal)


@router.patch("/{household_id}", response_model=None,
              summary="Change a household (JSON merge patch, RFC 7386)",
              openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {
                  "schema": {"type": "object"},
                  "example": {"income": {"year": 2020, "per_capita_net": "4200.00"},
                              "housing": {"safety_grade": "A"}}}}}},
              responses={200: {"model": Household, "description": MASKED_MEMBERS},
                         412: {"description": "If-Match does not name the current version"}})
async def patch_household(request: Request, household_id: str,
                          patch: Annotated[Any, Body(media_type="application/merge-patch+json")],
                          if_match: Annotated[str | None, Header(alias="If-Match")] = None,
                          principal: Principal = Depends(require_scopes("registry:write"))) -> JSONResponse:
    async with transaction(request.app.state.sessionmaker) as session:
        snapshot = await service.patch_household(session, household_id, patch, if_match, principal)
    return _snapshot_response(snapshot, principal)


@router.get("", summary="List households (cursor pagination)", description=MASKED_MEMBERS)
async def list_households(request: Request,
                          village_code: str | None = None, township_code: str | None = None,
                          region_code: str | None = None,
                          county_code: Annotated[str | None, Query(description="County code (= region_code)")] = None,
                          status: HouseholdStatus | None = None, category: Category | None = None,
                          cadre_id: Annotated[str | None, Query(description="Households paired with this cadre")] = None,
                          cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                          view: Annotated[Literal["full", "summary"], Query(description=VIEW_DOC)] = "full",
                          fields: Annotated[str | None, Query(max_length=500, description=FIELDS_DOC)] = None,
                          principal: Principal = Depends(require_scopes("registry:read"))) -> HouseholdPage:
    if view == "summary" and fields:
        raise Problem(422, "Conflicting parameters", "Use view=summary or fields=, not both.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "fields"], "msg": "not with view=summary"}])
    chosen = service.parse_fields(fields) if fields is not None else None
    if county_code and region_code and county_code != region_code:
        raise Problem(422, "Conflicting filters", "county_code and region_code name the same field.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "county_code"], "msg": "differs from region_code"}])
    async with request.app.state.sessionmaker() as session:
        items, next_cursor = await service.list_households(
            session, principal, village_code=village_code, township_code=township_code,
            region_code=region_code or county_code, status=status, cursor=cursor, limit=limit,
            category=category, cadre_id=cadre_id)
    if view == "summary":
        return {"items": [service.summary(i) for i in items], "next_cursor": next_cursor}
    if chosen is not None:
        return {"items": [service.select_fields(service.present(i, principal), chosen) for i in items],
                "next_cursor": next_cursor}
    return {"items": [service.present(i, principal) for i in items], "next_cursor": next_cursor}


class HouseholdSearch(StrictBody):
    """One of two forms: ``{"id_number"}`` or ``{"name", "village_code"}``; ``cursor`` and ``limit`` page."""

    id_number: str | None = Field(None, max_length=32, description="A living member's ID number (exact)")
    name: str | None = Field(None, min_length=1, max_length=64,
                             description="A member's name or its beginning (prefix match), within `village_code`")
    village_code: str | None = Field(None, min_length=1, max_length=16)
    cursor: str | None = Field(None, max_length=256, description="`next_cursor` of the previous page (name search)")
    limit: int = Field(20, ge=1, le=100)

    @field_validator("id_number")
    @classmethod
    def _valid_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_id_number(value.strip()).number
        except InvalidIdNumber as exc:  # the message never repeats the number
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_form(self) -> "HouseholdSearch":
        by_name = self.name is not None or self.village_code is not None
        if self.id_number is not None and by_name:
            raise ValueError("give either id_number, or name and village_code, not both")
        if self.id_number is None and not (self.name and self.village_code):
            raise ValueError("give id_number, or name together with village_code")
        if self.id_number is not None and self.cursor is not None:
            raise ValueError("an ID number finds at most one household: cursor applies to name searches")
        return self


SEARCH_DESCRIPTION = (
    "Find households by a member's ID number (`{\"id_number\"}`: exact, living members, in the body so it is "
    "never in a URL or an access log) or by a member's name within a village (`{\"name\", \"village_code\"}`: "
    "prefix match, an exact name matches itself; deceased members included). Answers household summaries "
    "(no full snapshots, ID numbers masked, no birth dates), only of the caller's area; `next_cursor` "
    "(name search) goes into the next body's `cursor`. Neither form, or both, is 422.")


@router.post(":search", summary="Search households by ID number or by name and village", description=SEARCH_DESCRIPTION)
async def search_households(request: Request, body: HouseholdSearch,
                            principal: Principal = Depends(require_scopes("registry:read"))) -> HouseholdPage:
    async with request.app.state.sessionmaker() as session:
        if body.id_number is not None:
            items, next_cursor = await service.search_by_id_number(session, principal, body.id_number), None
            log_person_lookup(request, principal, body.id_number, items)
        else:
            items, next_cursor = await service.search_by_name(session, principal, body.name, body.village_code,
                                                              cursor=body.cursor, limit=body.limit)
    return {"items": items, "next_cursor": next_cursor}


def log_person_lookup(request: Request, principal: Principal, id_number: str, items: list[dict]) -> None:
    """A search by ID number is an access to person data: who asked, for whose (keyed hash, never the
    number) and what was found. The registry has no audited access record yet; this is its log line."""
    hashed = identity_hasher(request.app.state.settings)(id_number)
    access_log.info("person look-up by id_number: subject=%s area=%s id_number_hash=%s found=%s", principal.subject,
                    principal.area, hashed[:16], [i["id"] for i in items],
                    extra={"event": "person_lookup", "subject": principal.subject, "id_number_hash": hashed,
                           "households": [i["id"] for i in items]})
