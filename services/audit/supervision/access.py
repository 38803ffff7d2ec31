"""The partner access log as supervisors read it: who looked up whom, and what followed."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.tables import audit_households, audit_partner_access
from shared.auth import Principal


async def list_partner_access(session: AsyncSession, principal: Principal, *, client_id: str | None,
                              household_id: str | None, person_id: str | None, kind: str | None,
                              cursor: int | None, limit: int) -> tuple[list[dict], int | None]:
    access = audit_partner_access
    query = select(access).order_by(access.c.record_id).limit(limit + 1)
    for column, value in ((access.c.client_id, client_id), (access.c.household_id, household_id),
                          (access.c.person_id, person_id), (access.c.kind, kind)):
        if value:
            query = query.where(column == value)
    if cursor:
        query = query.where(access.c.record_id > cursor)
    if principal.area and not principal.is_admin:
        # An area-limited supervisor sees look-ups of people registered in that area only.
        in_area = select(audit_households.c.household_id).where(or_(
            audit_households.c.village_code.startswith(principal.area, autoescape=True),
            audit_households.c.region_code.startswith(principal.area, autoescape=True)))
        query = query.where(access.c.household_id.in_(in_area))
    rows = (await session.execute(query)).all()
    items = [{"record_id": r.record_id, "event_id": r.event_id, "client_id": r.client_id, "scope": r.scope,
              "endpoint": r.endpoint, "kind": r.kind, "id_number": r.masked_id, "person_id": r.person_id,
              "household_id": r.household_id, "decision_id": r.decision_id, "eligible": r.eligible,
              "time": r.time.isoformat()} for r in rows[:limit]]
    return items, (rows[limit - 1].record_id if len(rows) > limit else None)
