"""Leads of return-to-poverty risk (监测线索): recorded from phones, offices, departments and benefits.

* ``client_lead_id`` makes a lead idempotent like a visit's ``client_visit_id``: the same id again answers
  the stored lead and writes nothing; the same id with another content (household, channel, causes, time,
  notes) is 409 naming the stored lead, and nothing is written.
* A caller holding only ``visits:write`` (a cadre) records leads for the households paired with them or in
  their work team's village, as visits; ``registry:write`` records any in its area.
* Deduplication per household: a lead for a household that already has an open lead or an open monitoring
  object is recorded ``merged`` (``merged_into`` = that lead or object), never a second case.
* Every lead publishes ``monitoring.lead_recorded``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.cadres.service import may_visit
from services.registry.common import StrictBody, as_utc, invalid, problem_from_validation
from services.registry.households.service import load_household
from services.registry.monitoring.machine import EVENT_LEAD_DISMISSED, EVENT_LEAD_RECORDED
from services.registry.monitoring.records import (CONFLICT, area_filter, area_of, lead_dict, load_lead,
                                                  parse_time_cursor, publish_lead_event, row_area, time_cursor)
from services.registry.tables import monitoring_leads, monitoring_objects
from shared.auth import Principal
from shared.bounds import FreeText
from shared.db import transaction
from shared.events import as_aware
from shared.problems import Problem
from shared.snapshot import RiskCause

MAX_BATCH = 500
CLOCK_SKEW = timedelta(minutes=10)
EARLIEST, LATEST = datetime(1990, 1, 1), datetime(2100, 12, 31)
Channel = Literal["self_report", "cadre_visit", "department", "supervision", "platform"]
LeadStatus = Literal["open", "verifying", "dismissed", "merged"]


class LeadIn(StrictBody):
    client_lead_id: uuid.UUID = Field(description="A fresh UUID per lead, made on the phone; a resend reuses it")
    household_id: str = Field(min_length=1, max_length=40)
    channel: Channel
    risk_causes: list[RiskCause] = Field(min_length=1, max_length=15)
    reported_at: datetime = Field(description="When the risk was reported (RFC 3339; without offset = China time)")
    notes: FreeText | None = Field(default=None, max_length=4000)

    @field_validator("reported_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
            raise ValueError(f"reported_at must be after {EARLIEST.year} and not in the future")
        return value


def parse_lead(raw: Any, loc: tuple = ("body",)) -> LeadIn:
    try:
        return LeadIn.model_validate(raw)
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid lead", prefix=loc) from exc


class NewLead:
    """What a lead says, whoever submits it (HTTP, a department's file, benefits' event)."""

    def __init__(self, client_lead_id: str, household_id: str, channel: str, risk_causes: list[str],
                 reported_at: datetime, notes: str | None, source_event_id: str | None = None,
                 lead_id: str | None = None) -> None:
        self.lead_id = lead_id  # assigned unless given (the demo district's stable ids)
        self.client_lead_id, self.household_id, self.channel = client_lead_id, household_id, channel
        self.risk_causes = sorted(dict.fromkeys(risk_causes))
        self.reported_at, self.notes, self.source_event_id = as_utc(reported_at), notes, source_event_id

    @classmethod
    def from_input(cls, lead: LeadIn) -> NewLead:
        return cls(str(lead.client_lead_id), lead.household_id, lead.channel, list(lead.risk_causes),
                   lead.reported_at, lead.notes)


def _differences(row, lead: NewLead) -> list[str]:
    differs = [name for name, stored, submitted in (
        ("household_id", row.household_id, lead.household_id), ("channel", row.channel, lead.channel),
        ("risk_causes", sorted(row.risk_causes or []), lead.risk_causes),
        ("reported_at", as_aware(row.reported_at), lead.reported_at), ("notes", row.notes, lead.notes))
        if stored != submitted]
    return differs


def _replay(row, lead: NewLead, principal: Principal) -> dict:
    if row.recorded_by != principal.subject and not principal.is_admin:
        raise Problem(409, "client_lead_id already used", "Another caller recorded a lead with this client_lead_id; "
                      "generate a fresh UUID per lead.", type_=CONFLICT)
    differs = _differences(row, lead)
    if differs:
        raise Problem(409, "client_lead_id already used for another lead",
                      f"client_lead_id {lead.client_lead_id} already names lead {row.id} (household {row.household_id}); "
                      f"this one differs in {', '.join(differs)} and was not recorded. Generate a fresh UUID per lead.",
                      type_=CONFLICT, stored_lead=lead_dict(row), differs=differs)
    return lead_dict(row)


async def _stored(session: AsyncSession, client_lead_id: str):
    return (await session.execute(select(monitoring_leads).where(
        monitoring_leads.c.client_lead_id == client_lead_id))).first()


def not_your_household(household_id: str) -> Problem:
    return Problem(403, "Not your household", f"A cadre records leads only for the households paired with them or "
                   f"in their work team's village; {household_id} is not one of them.",
                   type_="https://jingzhun.dev/problems/forbidden")


async def record_new(session: AsyncSession, lead: NewLead, principal: Principal, *, now: datetime,
                     check_cadre: bool = True) -> dict:
    """Insert a lead (deduplicated per household) and stage its event, inside the caller's transaction."""
    if lead.reported_at > now.astimezone(timezone.utc) + CLOCK_SKEW:
        raise invalid(["body", "reported_at"], "reported_at is in the future (check the phone's clock)")
    snapshot = await load_household(session, lead.household_id, principal, for_update=True)
    if check_cadre and not principal.has("registry:write") and not await may_visit(session, principal.subject,
                                                                                   snapshot):
        raise not_your_household(lead.household_id)
    status, merged_into, object_id = "open", None, None
    open_object = await session.scalar(select(monitoring_objects.c.id).where(
        monitoring_objects.c.open_household_id == lead.household_id))
    if open_object is not None:
        status, merged_into, object_id = "merged", open_object, open_object
    else:
        open_lead = await session.scalar(select(monitoring_leads.c.id).where(
            monitoring_leads.c.household_id == lead.household_id, monitoring_leads.c.status == "open")
            .order_by(monitoring_leads.c.recorded_at, monitoring_leads.c.id).limit(1))
        if open_lead is not None:
            status, merged_into = "merged", open_lead
    area = area_of(snapshot)
    values = {"id": lead.lead_id or f"ml-{uuid.uuid4().hex[:16]}", "client_lead_id": lead.client_lead_id,
              "household_id": lead.household_id, "channel": lead.channel, "risk_causes": lead.risk_causes,
              "reported_at": lead.reported_at, "recorded_at": now.astimezone(timezone.utc), "recorded_by": principal.subject,
              "status": status, "merged_into": merged_into, "monitoring_object_id": object_id, "notes": lead.notes,
              "source_event_id": lead.source_event_id, "dismiss_reason": None, "version": 1, **area}
    await session.execute(insert(monitoring_leads).values(**values))
    row = (await session.execute(select(monitoring_leads).where(monitoring_leads.c.id == values["id"]))).first()
    body = lead_dict(row)
    await publish_lead_event(session, EVENT_LEAD_RECORDED, body, area, actor=principal.subject)
    return body


async def record_lead(sessionmaker: async_sessionmaker[AsyncSession], lead: NewLead, principal: Principal, *,
                      now: datetime, check_cadre: bool = True) -> tuple[int, dict]:
    """(201, lead) for a new lead; (200, the stored lead) for a resend."""
    try:
        async with transaction(sessionmaker) as session:
            stored = await _stored(session, lead.client_lead_id)
            if stored is not None:
                return 200, _replay(stored, lead, principal)
            return 201, await record_new(session, lead, principal, now=now, check_cadre=check_cadre)
    except IntegrityError:
        async with sessionmaker() as session:  # two resends raced: answer with the one that committed
            stored = await _stored(session, lead.client_lead_id)
        if stored is None:
            raise
        return 200, _replay(stored, lead, principal)


async def record_batch(sessionmaker: async_sessionmaker[AsyncSession], items: list[Any], principal: Principal, *,
                       now: datetime) -> list[dict]:
    """Per-item results in index order; each item is recorded (or refused) on its own, so a resent batch
    after a lost answer replays what went through and records the rest."""
    results = []
    for index, raw in enumerate(items):
        client_lead_id = raw.get("client_lead_id") if isinstance(raw, dict) else None
        try:
            lead = parse_lead(raw, loc=("body", "leads", index))
            status, body = await record_lead(sessionmaker, NewLead.from_input(lead), principal, now=now)
            results.append({"index": index, "client_lead_id": str(lead.client_lead_id), "status": status,
                            "result": body})
        except Problem as problem:
            results.append({"index": index, "client_lead_id": client_lead_id, "status": problem.status,
                            "problem": problem.body()})
    return results


async def dismiss_lead(sessionmaker: async_sessionmaker[AsyncSession], lead_id: str, reason: str,
                       principal: Principal) -> dict:
    async with transaction(sessionmaker) as session:
        row = await load_lead(session, lead_id, principal, for_update=True)
        if row.status != "open":
            raise Problem(409, "Lead not open", f"Lead {lead_id} is {row.status}; only an open lead can be dismissed "
                          "(a lead under verification closes with its monitoring object).", type_=CONFLICT,
                          lead=lead_dict(row))
        await session.execute(update(monitoring_leads).where(monitoring_leads.c.id == lead_id).values(
            status="dismissed", dismiss_reason=reason, version=row.version + 1))
        row = await load_lead(session, lead_id, principal)
        body = lead_dict(row)
        await publish_lead_event(session, EVENT_LEAD_DISMISSED, body, row_area(row), actor=principal.subject)
    return body


async def get_lead(session: AsyncSession, lead_id: str, principal: Principal) -> dict:
    return lead_dict(await load_lead(session, lead_id, principal))


async def list_leads(session: AsyncSession, principal: Principal, *, household_id: str | None, status: str | None,
                     area: str | None, channel: str | None, older_than_days: int | None, now: datetime,
                     cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Oldest first (what waits longest comes first), by (recorded_at, id)."""
    query = (select(monitoring_leads).where(*area_filter(monitoring_leads, principal, area))
             .order_by(monitoring_leads.c.recorded_at, monitoring_leads.c.id).limit(limit + 1))
    if household_id:
        query = query.where(monitoring_leads.c.household_id == household_id)
    if status:
        query = query.where(monitoring_leads.c.status == status)
    if channel:
        query = query.where(monitoring_leads.c.channel == channel)
    if older_than_days is not None:
        query = query.where(monitoring_leads.c.recorded_at <= now.astimezone(timezone.utc)
                            - timedelta(days=older_than_days))
    if cursor:
        at, lead_id = parse_time_cursor(cursor)
        query = query.where(tuple_(monitoring_leads.c.recorded_at, monitoring_leads.c.id) > tuple_(at, lead_id))
    rows = (await session.execute(query)).all()
    next_cursor = time_cursor(rows[limit - 1].recorded_at, rows[limit - 1].id) if len(rows) > limit else None
    return [lead_dict(row) for row in rows[:limit]], next_cursor
