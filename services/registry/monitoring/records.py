"""What leads and monitoring objects look like on the wire and in events, and how they are found.

Shared by leads.py, objects.py, plan.py and the consumer: rows → dicts (docs/monitoring.md field names),
area columns from a household, area scoping (another area's lead or object answers 404 like a missing one),
cursors, and the event staging (``jz.registry.v1``, subject ``monitoring/<id>``, key = household id).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.households.service import decode_cursor, encode_cursor
from services.registry.outbox import publish_registry_event
from services.registry.tables import monitoring_leads, monitoring_measures, monitoring_objects, monitoring_steps
from shared.auth import Principal
from shared.events import as_aware
from shared.problems import Problem

CONFLICT = "https://jingzhun.dev/problems/conflict"
LABOURING = ("full", "skilled", "weak")  # labour capacities that count as "can work" (有劳动能力)


def iso(value: datetime | None) -> str | None:
    return as_aware(value).isoformat() if value is not None else None


def area_of(snapshot: dict) -> dict:
    village = snapshot.get("village") or {}
    return {"region_code": snapshot.get("region_code"), "township_code": village.get("township_code"),
            "village_code": village.get("code")}


def row_area(row) -> dict:
    return {"region_code": row.region_code, "township_code": row.township_code, "village_code": row.village_code}


def visible(principal: Principal, row) -> bool:
    return principal.sees_area(row.village_code or row.region_code)


def area_filter(table, principal: Principal, area: str | None):
    """WHERE clauses for the caller's area and an ``area`` filter (administrative code prefixes)."""
    clauses = []
    for prefix in filter(None, (None if principal.is_admin else principal.area, area)):
        clauses.append(or_(table.c.village_code.startswith(prefix, autoescape=True),
                           table.c.region_code.startswith(prefix, autoescape=True)))
    return clauses


def labour_capacity(snapshot: dict) -> str:
    living = [m for m in snapshot.get("members") or [] if not m.get("deceased")]
    return "has_labour" if any(m.get("labour_capacity") in LABOURING for m in living) else "no_labour"


# ---------------------------------------------------------------- leads

def lead_dict(row) -> dict[str, Any]:
    return {"id": row.id, "client_lead_id": row.client_lead_id, "household_id": row.household_id,
            "channel": row.channel, "risk_causes": list(row.risk_causes or []), "reported_at": iso(row.reported_at),
            "recorded_at": iso(row.recorded_at), "recorded_by": row.recorded_by, "status": row.status,
            "merged_into": row.merged_into, "monitoring_object_id": row.monitoring_object_id, "notes": row.notes,
            "source_event_id": row.source_event_id, "dismiss_reason": row.dismiss_reason, "version": row.version}


def lead_not_found(lead_id: str) -> Problem:
    return Problem(404, "Lead not found", f"No monitoring lead {lead_id}.")


async def load_lead(session: AsyncSession, lead_id: str, principal: Principal, *, for_update: bool = False):
    query = select(monitoring_leads).where(monitoring_leads.c.id == lead_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None or not visible(principal, row):
        raise lead_not_found(lead_id)
    return row


# ---------------------------------------------------------------- objects

def step_dict(row) -> dict[str, Any]:
    return {"procedure": row.procedure, "step": row.step, "actor": row.actor, "evidence": row.evidence or {},
            "reason": row.reason, "at": iso(row.at), "object_version": row.object_version}


def measure_dict(row) -> dict[str, Any]:
    return {"id": row.id, "type": row.type, "risk_cause": row.risk_cause, "responsible": row.responsible,
            "start_date": row.start_date.isoformat(), "end_date": row.end_date and row.end_date.isoformat(),
            "status": row.status, "notes": row.notes, "recorded_at": iso(row.recorded_at),
            "recorded_by": row.recorded_by, "updated_at": iso(row.updated_at), "updated_by": row.updated_by,
            "status_history": list(row.status_history or [])}


def object_not_found(object_id: str) -> Problem:
    return Problem(404, "Monitoring object not found", f"No monitoring object {object_id}.")


async def load_object_row(session: AsyncSession, object_id: str, principal: Principal, *, for_update: bool = False):
    query = select(monitoring_objects).where(monitoring_objects.c.id == object_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None or not visible(principal, row):
        raise object_not_found(object_id)
    return row


async def object_dict(session: AsyncSession, row, allowed: list[str] | None = None) -> dict[str, Any]:
    """The object with its steps, measures and leads (docs/monitoring.md's event form, plus the notice
    period, the area and, for API answers, ``allowed_actions``)."""
    steps = (await session.execute(select(monitoring_steps).where(monitoring_steps.c.object_id == row.id)
                                   .order_by(monitoring_steps.c.id))).all()
    measures = (await session.execute(select(monitoring_measures).where(monitoring_measures.c.object_id == row.id)
                                      .order_by(monitoring_measures.c.recorded_at, monitoring_measures.c.id))).all()
    lead_ids = list((await session.execute(select(monitoring_leads.c.id).where(
        monitoring_leads.c.monitoring_object_id == row.id).order_by(monitoring_leads.c.recorded_at,
                                                                    monitoring_leads.c.id))).scalars())
    body = {"id": row.id, "household_id": row.household_id, "case_no": row.case_no, "category": row.category,
            "channel": row.channel, "lead_ids": lead_ids, "risk_causes": list(row.risk_causes or []),
            "assigned_cadre": row.assigned_cadre, "procedure": row.procedure, "step": row.step,
            "status": row.status, "steps": [step_dict(s) for s in steps], "measures": [measure_dict(m) for m in measures],
            "opened_at": iso(row.opened_at), "identified_at": iso(row.identified_at),
            "first_measure_at": iso(row.first_measure_at), "eliminated_at": iso(row.eliminated_at),
            "closed_at": iso(row.closed_at), "notice_started_at": iso(row.notice_started_at),
            "notice_ends_at": iso(row.notice_ends_at), "step_at": iso(row.step_at), "version": row.version,
            "area": row_area(row)}
    if allowed is not None:
        body["allowed_actions"] = allowed
    return body


def object_event_form(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("allowed_actions", "area")}


async def publish_object_event(session: AsyncSession, event_type: str, body: dict, snapshot: dict, *,
                               actor: str) -> None:
    data = {"object": object_event_form(body), "area": body["area"], "labour_capacity": labour_capacity(snapshot)}
    await publish_registry_event(session, event_type, f"monitoring/{body['id']}", body["household_id"], data,
                                 body["version"], actor=actor)


async def publish_lead_event(session: AsyncSession, event_type: str, lead: dict, area: dict, *, actor: str) -> None:
    await publish_registry_event(session, event_type, f"monitoring/{lead['id']}", lead["household_id"],
                                 {"lead": {k: v for k, v in lead.items() if k != "version"}, "area": area},
                                 lead["version"], actor=actor)


# ---------------------------------------------------------------- cursors (time, id)

def time_cursor(at: datetime, row_id: str) -> str:
    return encode_cursor(f"{as_aware(at).isoformat()}|{row_id}")


def parse_time_cursor(cursor: str) -> tuple[datetime, str]:
    at, _, row_id = decode_cursor(cursor).partition("|")
    try:
        return datetime.fromisoformat(at), row_id
    except ValueError as exc:
        raise Problem(400, "Invalid cursor", "The cursor is not one this API returned.") from exc
