"""GET /v1/households/{id}/file: the household's case file (一户一档). Thin; the work is in service.py."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.registry.case_file import service
from shared.auth import Principal, require_scopes
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/households", tags=["households"], responses=PROBLEM_RESPONSES)

DESCRIPTION = (
    "Everything about one household in one read: `household` (the snapshot with its members), `procedure` "
    "(position, allowed actions and every step with actor and time), `visits` (the latest 20, newest first, "
    "with `next_cursor` for `GET /v1/households/{id}/visits`), `pairings` (with each cadre's name, unit and "
    "role), `entitlements` (benefits' current entitlements and assessments), `decisions` (audit's latest 20 "
    "ledger records about the household, newest first, with audit's `next_cursor`), `monitoring` and `notes`.\n\n"
    "`entitlements` and `decisions` are read from benefits and audit **with your token**: without "
    "`benefits:read` or `audit:read`, or when that service is down, slow or has not seen the household yet, "
    "the part is `null` and `notes` has `{part, reason, message_en, message_zh}` (`reason`: "
    "`benefits_unreachable`, `audit_unreachable`, `forbidden` with `required_scope`, `unauthorized`, "
    "`not_found`, `benefits_error`/`audit_error` with `upstream_status`, `behind`). The file is still 200.\n\n"
    "Area scoping and masking as `GET /v1/households/{id}`: another area's household is 404; without `admin` "
    "ID numbers are masked and members carry `birth_year` instead of `birth_date`.")


@router.get("/{household_id}/file", summary="The household's case file (一户一档)", description=DESCRIPTION)
async def get_case_file(request: Request, household_id: str,
                        principal: Principal = Depends(require_scopes("registry:read"))) -> JSONResponse:
    async with request.app.state.sessionmaker() as session:
        body = await service.case_file(session, request.app.state.peers, household_id, principal,
                                       request.headers.get("authorization"))
    return JSONResponse(body, headers={"ETag": f'"{body["household"]["version"]}"'})
