"""Risk elimination criteria of a monitored household (防止返贫监测, docs/monitoring.md): a thin route."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.benefits.consumer import evaluation_date
from services.benefits.monitoring import service
from shared.auth import Principal, require_scopes
from shared.bounds import QueryDate
from shared.problems import PROBLEM_RESPONSES, Problem, no_policy_pack_problem

router = APIRouter(tags=["monitoring"], responses=PROBLEM_RESPONSES)
AsOf = Annotated[QueryDate | None, Query(description="The day the criteria are judged on (months above the range "
                                                     "count up to it); default: the benefits evaluation date")]


@router.get("/v1/households/{household_id}/monitoring/elimination",
            summary="Whether a monitored household meets the risk elimination criteria (风险消除)")
async def elimination(request: Request, household_id: str, as_of: AsOf = None,
                      principal: Principal = Depends(require_scopes("benefits:read"))) -> dict[str, Any]:
    """`{"household_id", "eligible", "months_above_range", "above_range_since", "explanation", "unmet",
    "source", "as_of", "household_version", "policy"}`: income at or above the monitoring range for at least
    `monitoring.elimination_min_months` whole months up to `as_of` (from the income observations benefits
    keeps of every applied snapshot), rigid expenses resolved, 两不愁三保障 and drinking water secured."""
    day = as_of or evaluation_date(request.app.state.settings)
    async with request.app.state.sessionmaker() as session:
        snapshot = await service.stored_household(session, household_id)
        # Outside the caller's area answers like an unknown household, so other areas' ids are not confirmed.
        if snapshot is None or not principal.sees_area(service.area_of(snapshot)):
            raise Problem(404, "Household not known to benefits",
                          f"No registry event for {household_id} has been processed yet.")
        try:
            return await service.elimination_answer(session, snapshot, day,
                                                    getattr(request.app.state, "packs", None))
        except LookupError as exc:  # a day before every pack of the household's region (e.g. 1990)
            raise no_policy_pack_problem(exc, ["query", "as_of"]) from None
