"""The partner access log as supervisors read it: who looked up whom, and what followed.

Each item shows the access's real decision, read from its ledger record: ``decision`` (e.g.
eligible / not_eligible for an eligibility check, subsidised / refused for a loan issuance,
settled or the refusal reason for a stay, the counts of a coverage look-up), ``eligible``
(the decision's yes/no where it has one, else null) and ``outcome`` (amounts, reasons,
counts; never an ID number). Records written before benefits sent ``eligible`` fall back to
what their decision word says.
"""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.tables import audit_households, audit_partner_access, ledger_records
from shared.auth import Principal

# Older access records carry only a decision word; these words are decisions, the rest are reads.
_DECISION_WORDS = {"eligible": True, "approved": True, "granted": True, "settled": True,
                   "not_eligible": False, "not_covered": False}


def access_decision(data: dict) -> tuple[str | None, bool | None, dict | None]:
    """(decision, eligible, outcome) of an access record's data."""
    decision = data.get("decision") if isinstance(data.get("decision"), str) else None
    eligible = data.get("eligible")
    if not isinstance(eligible, bool):
        eligible = _DECISION_WORDS.get(decision) if decision else None
    outcome = data.get("outcome") if isinstance(data.get("outcome"), dict) else None
    return decision, eligible, outcome


async def list_partner_access(session: AsyncSession, principal: Principal, *, client_id: str | None,
                              household_id: str | None, person_id: str | None, kind: str | None,
                              cursor: int | None, limit: int) -> tuple[list[dict], int | None]:
    access = audit_partner_access
    query = (select(access, ledger_records.c.data)
             .outerjoin(ledger_records, ledger_records.c.id == access.c.record_id)
             .order_by(access.c.record_id).limit(limit + 1))
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
    items = []
    for r in rows[:limit]:
        decision, eligible, outcome = access_decision(r.data if isinstance(r.data, dict) else {})
        items.append({"record_id": r.record_id, "event_id": r.event_id, "client_id": r.client_id, "scope": r.scope,
                      "endpoint": r.endpoint, "kind": r.kind, "id_number": r.masked_id, "person_id": r.person_id,
                      "household_id": r.household_id, "decision_id": r.decision_id, "decision": decision,
                      "eligible": eligible if r.data is not None else r.eligible, "outcome": outcome,
                      "time": r.time.isoformat()})
    return items, (rows[limit - 1].record_id if len(rows) > limit else None)
