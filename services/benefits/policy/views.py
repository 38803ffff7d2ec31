"""Policy packs as loaded and validated at start-up: list, and one pack fully resolved."""
from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request

from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["policies"], responses=PROBLEM_RESPONSES)


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
