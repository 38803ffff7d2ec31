"""Folds the registry's ``monitoring.*`` events into ``audit_monitoring_leads`` / ``audit_monitoring_objects``
and indexes each such record under its household (``audit_record_households``), so the household's decision
history shows every step of its monitoring cases.

Idempotent by event id (the append skips a duplicate, so it is never projected twice) and guarded by the
lead's or object's own version: an older version arriving late never overwrites a newer one. Tolerant like
every projection: a field the producer did not send skips what needs it, never the event.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.tables import audit_monitoring_leads, audit_monitoring_objects, audit_record_households
from shared.events import as_aware

MONITORING_PREFIX = "monitoring."
IDENTIFIED_STEP = "data_entry"
ELIMINATION_CONFIRMED_STEP = "county_confirmation"


def _parse_time(value: Any):
    from services.audit.projections import parse_time
    return parse_time(value)


def monitoring_household(data: dict) -> str | None:
    """The household a monitoring event is about: ``data.lead.household_id`` or ``data.object.household_id``
    (benefits' ``monitoring.risk_detected`` carries ``household_id`` and a ``household/`` subject)."""
    for key in ("object", "lead"):
        part = data.get(key)
        if isinstance(part, dict) and isinstance(part.get("household_id"), str):
            return part["household_id"]
    return data.get("household_id") if isinstance(data.get("household_id"), str) else None


def _area(data: dict) -> dict:
    area = data.get("area") if isinstance(data.get("area"), dict) else {}
    village = area.get("village_code")
    region = area.get("region_code") or (village[:6] if isinstance(village, str) else None)
    return {"region_code": region, "township_code": area.get("township_code"), "village_code": village}


def _version(part: dict, record: dict) -> int:
    version = part.get("version")
    if not isinstance(version, int):
        version = (record.get("data") or {}).get("version")
    return version if isinstance(version, int) else 0


async def project_monitoring(session: AsyncSession, record: dict, data: dict) -> None:
    household_id = monitoring_household(data)
    if household_id is None:
        return
    if not (record.get("subject") or "").startswith("household/"):
        # the history finds household-subject records by subject already
        await session.execute(insert(audit_record_households).values(
            record_id=record["id"], household_id=household_id, time=record.get("time") or ""))
    if isinstance(data.get("lead"), dict) and isinstance(data["lead"].get("id"), str):
        await _project_lead(session, record, data, data["lead"], household_id)
    if isinstance(data.get("object"), dict) and isinstance(data["object"].get("id"), str):
        await _project_object(session, record, data, data["object"], household_id)


async def _project_lead(session: AsyncSession, record: dict, data: dict, lead: dict, household_id: str) -> None:
    t = audit_monitoring_leads
    row = (await session.execute(select(t).where(t.c.id == lead["id"]))).first()
    version = _version(lead, record)
    if row is not None and row.version > version:
        return
    status = lead.get("status") if isinstance(lead.get("status"), str) else "open"
    object_id = lead.get("monitoring_object_id") or (row.monitoring_object_id if row is not None else None)
    if status == "open" and object_id:
        status = "verifying"  # an object already lists it: the registry opened a case from it
    values = {"household_id": household_id, **_area(data), "channel": lead.get("channel"), "status": status,
              "risk_causes": [c for c in lead.get("risk_causes") or [] if isinstance(c, str)],
              "reported_at": _parse_time(lead.get("reported_at")), "recorded_at": _parse_time(lead.get("recorded_at")),
              "merged_into": lead.get("merged_into"), "monitoring_object_id": object_id, "version": version,
              "record_id": record["id"], "event_id": record.get("event_id")}
    if row is None:
        await session.execute(insert(t).values(id=lead["id"], **values))
    else:
        await session.execute(update(t).where(t.c.id == lead["id"]).values(**values))
    reported = values["reported_at"]
    if object_id and reported is not None:  # the object came first: its lead-to-identification start
        o = audit_monitoring_objects
        current = await session.scalar(select(o.c.lead_reported_at).where(o.c.id == object_id))
        if current is None or as_aware(current) > reported:
            await session.execute(update(o).where(o.c.id == object_id).values(lead_reported_at=reported))


def _steps(obj: dict) -> list[dict]:
    out = []
    for step in obj.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("step"), str):
            out.append({"procedure": step.get("procedure"), "step": step["step"], "actor": step.get("actor"),
                        "at": step.get("at")})
    return out


def _elimination_evidence(obj: dict, record: dict) -> dict | None:
    confirmed = [s for s in obj.get("steps") or [] if isinstance(s, dict)
                 and s.get("step") == ELIMINATION_CONFIRMED_STEP]
    if not confirmed:
        return None
    step = confirmed[-1]
    evidence = step.get("evidence") if isinstance(step.get("evidence"), dict) else {}
    assessment = evidence.get("benefits_assessment")
    return {"record_id": record["id"], "event_id": record.get("event_id"), "actor": step.get("actor"),
            "at": step.get("at"), "benefits_assessment": assessment if isinstance(assessment, dict) else None}


def _first_measure(obj: dict):
    first = _parse_time(obj.get("first_measure_at"))
    if first is not None:
        return first
    times = [_parse_time(m.get("recorded_at") or m.get("start_date")) for m in obj.get("measures") or []
             if isinstance(m, dict)]
    times = [t for t in times if t is not None]
    return min(times) if times else None


async def _project_object(session: AsyncSession, record: dict, data: dict, obj: dict, household_id: str) -> None:
    t, leads = audit_monitoring_objects, audit_monitoring_leads
    row = (await session.execute(select(t).where(t.c.id == obj["id"]))).first()
    version = _version(obj, record)
    lead_ids = [i for i in obj.get("lead_ids") or [] if isinstance(i, str)]
    # The leads it was opened from are no longer open, whatever this version's age.
    for lead_id in lead_ids:
        lead = (await session.execute(select(leads.c.status, leads.c.monitoring_object_id)
                                      .where(leads.c.id == lead_id))).first()
        if lead is None:  # its own event comes later (or never reached audit): known from the object so far
            await session.execute(insert(leads).values(
                id=lead_id, household_id=household_id, **_area(data), channel=obj.get("channel"), status="verifying",
                risk_causes=[], monitoring_object_id=obj["id"], version=0, record_id=record["id"],
                event_id=record.get("event_id")))
        elif lead.monitoring_object_id is None or lead.status == "open":
            await session.execute(update(leads).where(leads.c.id == lead_id).values(
                monitoring_object_id=lead.monitoring_object_id or obj["id"],
                status="verifying" if lead.status == "open" else lead.status))
    if row is not None and row.version > version:
        return
    reported = (await session.execute(select(leads.c.reported_at).where(
        leads.c.id.in_(lead_ids), leads.c.reported_at.is_not(None)))).scalars().all() if lead_ids else []
    status = obj.get("status") if isinstance(obj.get("status"), str) else "identifying"
    steps = _steps(obj)
    dismissed_at = None
    if status == "dismissed":
        dismissed_at = (_parse_time(obj.get("closed_at")) or (_parse_time(steps[-1]["at"]) if steps else None)
                        or _parse_time(record.get("time")))
    case_no = obj.get("case_no")
    values = {"household_id": household_id, "case_no": str(case_no) if case_no is not None else None, **_area(data),
              "category": obj.get("category"), "channel": obj.get("channel"), "status": status,
              "procedure": obj.get("procedure"), "step": obj.get("step"), "lead_ids": lead_ids,
              "lead_reported_at": min(reported) if reported else None,
              "opened_at": _parse_time(obj.get("opened_at")), "identified_at": _parse_time(obj.get("identified_at")),
              "first_measure_at": _first_measure(obj), "eliminated_at": _parse_time(obj.get("eliminated_at")),
              "dismissed_at": dismissed_at,
              "measures": sum(1 for m in obj.get("measures") or [] if isinstance(m, dict)), "steps": steps,
              "elimination_evidence": _elimination_evidence(obj, record),
              "labour_capacity": data.get("labour_capacity"), "version": version, "record_id": record["id"],
              "event_id": record.get("event_id")}
    if values["lead_reported_at"] is None and row is not None:
        values["lead_reported_at"] = row.lead_reported_at
    if row is None:
        await session.execute(insert(t).values(id=obj["id"], first_record_id=record["id"], **values))
    else:
        await session.execute(update(t).where(t.c.id == obj["id"]).values(**values))
