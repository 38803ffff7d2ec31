"""Policy simulation: parameter overrides in, per-programme and per-township deltas out."""
from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.benefits.consumer import evaluation_date
from services.benefits.recompute.scope import Scope
from services.benefits.simulation.service import OverrideError, simulate
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["simulation"], responses=PROBLEM_RESPONSES)


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pack": "nankang-2020", "overrides": {"crop_livestock.household_cap": "10000"},
         "scope": {"kind": "region", "code": "360703"}, "as_of": "2020-06-30"}]})
    pack: str = Field(description="The pack whose parameters change (packs extending it inherit the change)")
    overrides: dict[str, Any] = Field(min_length=1, description="parameter name → new value; an object is "
                                      "merged into a table parameter, so one rate can change alone")
    scope: Scope = Field(default_factory=lambda: Scope(kind="all"))
    as_of: date | None = None


def _validation_problem(errors: list[dict]) -> Problem:
    return Problem(422, "Invalid request", "The overrides do not fit the pack.",
                   type_="https://jingzhun.dev/problems/validation", errors=errors)


@router.post("/v1/simulate", summary="What would change under other parameter values (read-only)")
async def simulate_policy(request: Request, body: SimulateRequest,
                          principal: Principal = Depends(require_scopes("benefits:evaluate"))) -> dict[str, Any]:
    """Evaluates every household in scope before and after the overrides; stores and publishes
    nothing. Per programme and per township: households affected, amount before and after, delta."""
    if principal.area and not principal.is_admin and not body.scope.within(principal.area):
        raise Problem(403, "Outside your area", f"Your token is limited to area {principal.area}; "
                      "use a region or village scope inside it.", type_="https://jingzhun.dev/problems/forbidden")
    as_of = body.as_of or evaluation_date(request.app.state.settings)
    try:
        async with request.app.state.sessionmaker() as session:
            return await simulate(session, request.app.state.packs, pack=body.pack, overrides=body.overrides,
                                  scope=body.scope, as_of=as_of)
    except OverrideError as exc:
        raise _validation_problem(exc.errors) from None
    except LookupError as exc:
        raise _validation_problem([{"loc": ["body", "as_of"], "msg": str(exc)}]) from None
