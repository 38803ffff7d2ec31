"""Monitoring objects (监测对象): opened from a lead, taken through identification and risk elimination
(machine.py) with every step recorded (actor, evidence, time), and their assistance measures.

Each step is one unit of work: the object's new version, the step row, the household's status change (when
the step moves it: ``data_entry`` → ``start_monitoring``, ``county_confirmation`` → ``end_monitoring``,
through the household workflow's own machine and step records) and the events commit together or not at
all. Steps guarded by the elimination criteria ask benefits *before* the transaction opens (no lock held
across an HTTP call); the transaction then checks the object did not move meanwhile.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import Field, ValidationError
from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.benefits_client import BenefitsClient
from services.registry.common import StrictBody, invalid, problem_from_validation
from services.registry.households.service import load_household, save_new_version
from services.registry.monitoring import machine
from services.registry.monitoring.machine import (CATEGORIES, EVENT_MEASURE_RECORDED, EVENT_MEASURE_UPDATED,
                                                  EVENT_OBJECT_OPENED, EliminationAnswer, EliminationCriteriaNotMet,
                                                  IllegalMeasureStatus, IllegalStep,
                                                  NoticeRunning, ObjectState, SeparationOfDuties, StepContext,
                                                  StepReasonRequired, allowed_actions, apply_step,
                                                  check_measure_status, needs_elimination_answer)
from services.registry.monitoring.records import (CONFLICT, area_filter, area_of, load_lead, load_object_row,
                                                  object_dict, parse_time_cursor, publish_object_event, time_cursor)
from services.registry.tables import (cadres, household_procedures, monitoring_leads, monitoring_measures,
                                      monitoring_objects, monitoring_steps, procedure_steps)
from services.registry.workflows import machine as household_machine
from services.registry.workflows.service import state_of
from shared.auth import Principal
from shared.bounds import FreeText
from shared.db import transaction
from shared.events import as_aware, utcnow
from shared.problems import Problem
from shared.snapshot import RiskCause

ILLEGAL = "https://jingzhun.dev/problems/illegal-transition"
SEPARATION = "https://jingzhun.dev/problems/separation-of-duties"
NOT_MET = "https://jingzhun.dev/problems/elimination-criteria-not-met"
Category = Literal["unstable_exited", "marginal_at_risk", "sudden_hardship"]
MeasureType = Literal["industry", "employment", "public_welfare_post", "skills_training", "microcredit", "dibao",
                      "tekun", "temporary_assistance", "medical", "insurance", "education", "housing",
                      "drinking_water", "relocation", "other"]
MeasureStatus = Literal["planned", "in_progress", "completed", "cancelled"]
# Measures that are the safety net (兜底保障) for a household that cannot work.
SAFETY_NET_MEASURES = ("dibao", "tekun")
MAX_EVIDENCE_KEYS = 50


class ObjectIn(StrictBody):
    lead_id: str = Field(min_length=1, max_length=40, description="The open lead the case starts from")
    category: Category
    risk_causes: list[RiskCause] | None = Field(default=None, max_length=15,
                                                description="Default: the causes of the lead and the leads merged "
                                                            "into it")
    assigned_cadre: str | None = Field(default=None, max_length=40, description="A registered cadre's id")


class StepIn(StrictBody):
    action: str = Field(min_length=1, max_length=32, description=f"One of: {', '.join(machine.ACTIONS)}")
    reason: FreeText | None = Field(default=None, max_length=2000)
    evidence: dict[str, Any] = Field(default_factory=dict, description="What the step rests on (minutes of the "
                                     "appraisal, the notice's place, documents' numbers …), kept with the step")
    as_of: date | None = Field(default=None, description="Date the elimination criteria are judged on "
                                                         "(propose_elimination, county_confirmation; default today)")


class MeasureIn(StrictBody):
    type: MeasureType
    risk_cause: RiskCause | None = Field(default=None, description="The risk cause the measure answers (one of "
                                                                  "the object's)")
    responsible: FreeText = Field(min_length=1, max_length=128, description="Responsible unit or cadre")
    start_date: date
    status: MeasureStatus = "planned"
    notes: FreeText | None = Field(default=None, max_length=2000)


class MeasurePatch(StrictBody):
    """The fields of a measure that change after it is recorded (a JSON merge patch of them)."""
    status: MeasureStatus | None = Field(default=None, description="planned → in_progress | cancelled, "
                                         "in_progress → completed | cancelled; completed and cancelled are final")
    end_date: date | None = None
    notes: FreeText | None = Field(default=None, max_length=2000)
    responsible: FreeText | None = Field(default=None, min_length=1, max_length=128,
                                         description="Responsible unit or cadre")


MEASURE_PATCHABLE = tuple(MeasurePatch.model_fields)
MEASURE_NOT_NULL = ("status", "responsible")


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


def state_of_row(row) -> ObjectState:
    return ObjectState(status=row.status, procedure=row.procedure, step=row.step,
                       notice_started_at=as_aware(row.notice_started_at), notice_ends_at=as_aware(row.notice_ends_at),
                       last_actor=row.last_actor)


async def _view(session: AsyncSession, object_id: str) -> dict:
    row = (await session.execute(select(monitoring_objects).where(monitoring_objects.c.id == object_id))).first()
    return await object_dict(session, row, allowed_actions(state_of_row(row)))


# ---------------------------------------------------------------- open

async def open_object(sessionmaker: async_sessionmaker[AsyncSession], body: ObjectIn, principal: Principal, *,
                      now: datetime, object_id: str | None = None) -> dict:
    """``object_id``: assigned unless given (the demo district's stable ids)."""
    try:
        async with transaction(sessionmaker) as session:
            return await _open(session, body, principal, now, object_id or f"mo-{uuid.uuid4().hex[:16]}")
    except IntegrityError as exc:  # another case of the household opened at the same moment
        raise Problem(409, "Household already has an open monitoring object",
                      "Another monitoring object of this household was opened meanwhile; read it and attach "
                      "the lead to it.", type_=CONFLICT) from exc


async def _open(session: AsyncSession, body: ObjectIn, principal: Principal, now: datetime, object_id: str) -> dict:
    lead = await load_lead(session, body.lead_id, principal, for_update=True)
    if lead.status != "open":
        raise Problem(409, "Lead not open", f"Lead {lead.id} is {lead.status}"
                      + (f" (merged into {lead.merged_into})" if lead.merged_into else "")
                      + "; a monitoring object opens from an open lead.", type_=CONFLICT, lead_status=lead.status,
                      merged_into=lead.merged_into, monitoring_object_id=lead.monitoring_object_id)
    snapshot = await load_household(session, lead.household_id, principal, for_update=True)
    current = await session.scalar(select(monitoring_objects.c.id).where(
        monitoring_objects.c.open_household_id == lead.household_id))
    if current is not None:
        raise Problem(409, "Household already has an open monitoring object",
                      f"Household {lead.household_id} is monitoring object {current}; a household has one open case "
                      "at a time.", type_=CONFLICT, monitoring_object_id=current)
    if body.category == "unstable_exited" and not snapshot.get("exit_date"):
        raise invalid(["body", "category"], "unstable_exited is for a household that has exited poverty; this "
                      "household has no exit date (marginal_at_risk or sudden_hardship?)")
    if body.assigned_cadre and not await session.scalar(select(cadres.c.id).where(
            cadres.c.id == body.assigned_cadre)):
        raise invalid(["body", "assigned_cadre"], f"no cadre {body.assigned_cadre}")
    merged = (await session.execute(select(monitoring_leads.c.id, monitoring_leads.c.risk_causes).where(
        monitoring_leads.c.merged_into == lead.id, monitoring_leads.c.status == "merged"))).all()
    causes = body.risk_causes if body.risk_causes else sorted(
        {c for row in (lead, *merged) for c in row.risk_causes or []})
    if not causes:
        raise invalid(["body", "risk_causes"], "at least one risk cause is needed")
    case_no = (await session.scalar(select(func.max(monitoring_objects.c.case_no)).where(
        monitoring_objects.c.household_id == lead.household_id)) or 0) + 1
    at = now.astimezone(timezone.utc)
    await session.execute(insert(monitoring_objects).values(
        id=object_id, household_id=lead.household_id, case_no=case_no, open_household_id=lead.household_id,
        category=body.category, channel=lead.channel, lead_ids=[], risk_causes=sorted(dict.fromkeys(causes)),
        assigned_cadre=body.assigned_cadre, procedure=machine.Procedure.IDENTIFICATION.value, step=None,
        status=machine.Status.IDENTIFYING.value, last_actor=None, step_at=at, opened_at=at, version=1,
        **area_of(snapshot)))
    await session.execute(update(monitoring_leads).where(monitoring_leads.c.id == lead.id).values(
        status="verifying", monitoring_object_id=object_id, version=lead.version + 1))
    if merged:
        await session.execute(update(monitoring_leads).where(monitoring_leads.c.id.in_([m.id for m in merged]))
                              .values(monitoring_object_id=object_id))
    view = await _view(session, object_id)
    await publish_object_event(session, EVENT_OBJECT_OPENED, view, snapshot, actor=principal.subject)
    return view


# ---------------------------------------------------------------- steps

def _refusal(exc: Exception, state: ObjectState) -> Problem:
    allowed = allowed_actions(state)
    where = {"current_status": str(state.status), "procedure": state.procedure and str(state.procedure),
             "step": state.step, "allowed_actions": allowed}
    if isinstance(exc, IllegalStep):
        return Problem(422 if exc.unknown else 409, "Step not allowed", str(exc), type_=ILLEGAL, action=exc.action,
                       **where)
    if isinstance(exc, StepReasonRequired):
        return Problem(422, "Reason required", str(exc), type_="https://jingzhun.dev/problems/validation",
                       errors=[{"loc": ["body", "reason"], "msg": str(exc)}])
    if isinstance(exc, NoticeRunning):
        return Problem(409, "Village notice period still running", str(exc), type_=ILLEGAL,
                       notice_ends_at=exc.until.isoformat(), **where)
    if isinstance(exc, SeparationOfDuties):
        return Problem(409, "Separation of duties", str(exc), type_=SEPARATION, code="separation_of_duties",
                       action=exc.action, actor=exc.actor, **where)
    if isinstance(exc, EliminationCriteriaNotMet):
        return Problem(409, "Elimination criteria not met", "Benefits says the household does not yet meet the "
                       "risk-elimination criteria (income stably above the range for six months, rigid expenses "
                       "resolved, the guarantees and drinking water secured); see benefits_assessment.",
                       type_=NOT_MET, code="elimination_criteria_not_met",
                       explanation=list(exc.answer.explanation), benefits_assessment=dict(exc.answer.body), **where)
    raise exc


def _check_evidence(evidence: dict) -> None:
    if len(evidence) > MAX_EVIDENCE_KEYS:
        raise invalid(["body", "evidence"], f"at most {MAX_EVIDENCE_KEYS} keys")
    if "benefits_assessment" in evidence:
        raise invalid(["body", "evidence", "benefits_assessment"], "benefits_assessment is recorded by the "
                      "registry from benefits' own answer")


async def take_step(sessionmaker: async_sessionmaker[AsyncSession], object_id: str, body: StepIn,
                    principal: Principal, *, now: datetime, notice_period: timedelta,
                    benefits: BenefitsClient) -> dict:
    _check_evidence(body.evidence)
    # 1. read-only: where does the object stand, and does this step need benefits' answer?
    async with sessionmaker() as session:
        seen = await load_object_row(session, object_id, principal)
    state = state_of_row(seen)
    answer = None
    if needs_elimination_answer(state, body.action):
        as_of = body.as_of or now.date()
        answer = EliminationAnswer.from_body(await benefits.monitoring_elimination(seen.household_id, as_of))

    # 2. one transaction: re-check, apply, persist, publish.
    async with transaction(sessionmaker) as session:
        row = await load_object_row(session, object_id, principal, for_update=True)
        if row.version != seen.version:
            raise Problem(412, "Version mismatch", "The monitoring object changed while benefits was being asked; "
                          "retry.", type_="https://jingzhun.dev/problems/stale-version", current_version=row.version)
        state = state_of_row(row)
        context = StepContext(actor=principal.subject, reason=body.reason, notice_period=notice_period,
                              elimination=answer)
        try:
            result = apply_step(state, body.action, now=now, context=context)
        except (IllegalStep, StepReasonRequired, NoticeRunning, SeparationOfDuties, EliminationCriteriaNotMet) as exc:
            raise _refusal(exc, state) from exc
        new, row_rule = result.new_state, result.transition
        snapshot = await load_household(session, row.household_id, principal, for_update=True)
        evidence = dict(body.evidence)
        if answer is not None:
            evidence["benefits_assessment"] = dict(answer.body)
        if row_rule.household_action:
            household_step = await _household_step(session, snapshot, row_rule.household_action, row,
                                                   principal, now)
            evidence["household_transition"] = household_step
            if household_step.get("household") is not None:
                snapshot = household_step.pop("household")
        at = now.astimezone(timezone.utc)
        values: dict[str, Any] = {
            "status": str(new.status), "procedure": new.procedure and str(new.procedure), "step": new.step,
            "notice_started_at": _utc(new.notice_started_at), "notice_ends_at": _utc(new.notice_ends_at),
            "last_actor": new.last_actor, "step_at": at, "version": row.version + 1}
        if row_rule.sets_identified_at:
            values["identified_at"] = at
        if row_rule.sets_eliminated_at:
            values["eliminated_at"] = at
        if new.status in (machine.Status.ELIMINATED, machine.Status.DISMISSED):
            values.update(open_household_id=None, closed_at=at)
        await session.execute(update(monitoring_objects).where(monitoring_objects.c.id == object_id).values(**values))
        await session.execute(insert(monitoring_steps).values(
            object_id=object_id, object_version=row.version + 1, procedure=str(result.procedure), step=result.step,
            actor=principal.subject, reason=context.clean_reason, evidence=evidence, at=at))
        if new.status == machine.Status.DISMISSED:
            await session.execute(update(monitoring_leads).where(
                monitoring_leads.c.monitoring_object_id == object_id, monitoring_leads.c.status == "verifying")
                .values(status="dismissed", dismiss_reason=context.clean_reason,
                        version=monitoring_leads.c.version + 1))
        view = await _view(session, object_id)
        await publish_object_event(session, row_rule.event, view, snapshot, actor=principal.subject)
    return view


async def _household_step(session: AsyncSession, snapshot: dict, action: str, row, principal: Principal,
                          now: datetime) -> dict:
    """Move the household's own status with the monitoring object (``start_monitoring`` at data entry,
    ``end_monitoring`` at risk elimination) through the household workflow's machine, when it allows it:
    a registered household stays registered, an already monitored one stays monitored.

    A never-registered household identified as ``marginal_at_risk`` gets the category ``marginal`` (边缘户)
    with the same version, which is what lets it start monitoring as a candidate."""
    procedure_row = (await session.execute(select(household_procedures).where(
        household_procedures.c.household_id == snapshot["id"]))).first()
    after = dict(snapshot)
    categories = list(snapshot.get("categories") or [])
    if action == "start_monitoring" and row.category == "marginal_at_risk" and snapshot["status"] == "candidate" \
            and "marginal" not in categories:
        after["categories"] = categories = [*categories, "marginal"]
    state = state_of({**snapshot, "categories": categories}, procedure_row)
    allowed = household_machine.allowed_actions(state)
    if action not in allowed:
        return {"action": action, "taken": False, "household_status": snapshot["status"],
                "note": f"the household is {state.position}; its status stays"}
    context = household_machine.TransitionContext(actor=principal.subject,
                                                  reason=f"monitoring object {row.id} (case {row.case_no})")
    result = household_machine.apply_action(state, action, now=now, context=context)
    step = result.step_record
    after["status"] = str(result.new_state.status)
    step_dict = step.to_dict()
    saved = await save_new_version(
        session, snapshot, after, event_type=household_machine.EVENT_STATUS_CHANGED, actor=principal.subject,
        note=f"{action}: {step.reason}",
        extra={"transition": step_dict, "from_status": str(state.status), "to_status": after["status"],
               "monitoring_object_id": row.id})
    await session.execute(insert(procedure_steps).values(
        household_id=snapshot["id"], household_version=saved["version"], procedure=None, action=step.action,
        outcome=step.outcome, from_status=str(step.from_status), to_status=str(step.to_status), actor=step.actor,
        at=now.astimezone(timezone.utc), reason=step.reason, note=step.note, override=False, overridden_criteria=[],
        assessment=None))
    if procedure_row is not None and procedure_row.procedure:
        await session.execute(update(household_procedures).where(
            household_procedures.c.household_id == snapshot["id"]).values(
            procedure=None, step=None, notice_started_at=None, notice_ends_at=None, override=None,
            updated_at=utcnow()))
    return {"action": action, "taken": True, "from_status": str(state.status), "to_status": after["status"],
            "household_version": saved["version"], "household": saved}


# ---------------------------------------------------------------- measures

async def add_measure(sessionmaker: async_sessionmaker[AsyncSession], object_id: str, body: MeasureIn,
                      principal: Principal, *, now: datetime | None = None) -> dict:
    async with transaction(sessionmaker) as session:
        row = await load_object_row(session, object_id, principal, for_update=True)
        if row.status not in {s.value for s in machine.OPEN_STATUSES}:
            raise Problem(409, "Monitoring object closed", f"Monitoring object {object_id} is {row.status}; measures "
                          "are recorded for an open case.", type_=CONFLICT, current_status=row.status)
        if body.risk_cause is not None and body.risk_cause not in (row.risk_causes or []):
            raise invalid(["body", "risk_cause"], f"not one of the object's risk causes: "
                          f"{', '.join(row.risk_causes or [])}")
        snapshot = await load_household(session, row.household_id, principal)
        at = now.astimezone(timezone.utc) if now is not None else utcnow()
        measure_id = f"mm-{uuid.uuid4().hex[:16]}"
        await session.execute(insert(monitoring_measures).values(
            id=measure_id, object_id=object_id, household_id=row.household_id, type=body.type,
            risk_cause=body.risk_cause, responsible=body.responsible, start_date=body.start_date, status=body.status,
            notes=body.notes, recorded_at=at, recorded_by=principal.subject))
        values: dict[str, Any] = {"version": row.version + 1}
        if row.first_measure_at is None:
            values["first_measure_at"] = at
        await session.execute(update(monitoring_objects).where(monitoring_objects.c.id == object_id).values(**values))
        view = await _view(session, object_id)
        await publish_object_event(session, EVENT_MEASURE_RECORDED, view, snapshot, actor=principal.subject)
    measure = next(m for m in view["measures"] if m["id"] == measure_id)
    return {"measure": measure, "object": view}


def measure_patch(patch: Any) -> MeasurePatch:
    """The merge patch checked: an object of the patchable fields, ``status`` and ``responsible`` not null."""
    if not isinstance(patch, dict):
        raise invalid(["body"], "a JSON merge patch object of status, end_date, notes, responsible")
    for key in patch:
        if key not in MEASURE_PATCHABLE:
            raise invalid(["body", key], "only status, end_date, notes and responsible of a measure change "
                          "after it is recorded")
    for key in MEASURE_NOT_NULL:
        if key in patch and patch[key] is None:
            raise invalid(["body", key], "cannot be removed (null)")
    try:
        return MeasurePatch.model_validate(patch)
    except ValidationError as exc:
        raise problem_from_validation(exc) from exc


async def update_measure(sessionmaker: async_sessionmaker[AsyncSession], object_id: str, measure_id: str,
                         patch: Any, principal: Principal, *, now: datetime | None = None) -> dict:
    """Change a measure's status (``MEASURE_TRANSITIONS``), end date, notes or responsible unit, recording who
    and when (``updated_by``/``updated_at``, each status change in ``status_history``); the object's version
    moves and ``monitoring.measure_updated`` carries its full state. A patch that changes nothing writes
    nothing and answers the current state."""
    body = measure_patch(patch)
    given = body.model_fields_set
    async with transaction(sessionmaker) as session:
        row = await load_object_row(session, object_id, principal, for_update=True)
        measure = (await session.execute(select(monitoring_measures).where(
            monitoring_measures.c.id == measure_id, monitoring_measures.c.object_id == object_id)
            .with_for_update())).first()
        if measure is None:
            raise Problem(404, "Measure not found", f"Monitoring object {object_id} has no measure {measure_id}.")
        if row.status not in {s.value for s in machine.OPEN_STATUSES}:
            raise Problem(409, "Monitoring object closed", f"Monitoring object {object_id} is {row.status}; its "
                          "measures no longer change.", type_=CONFLICT, current_status=row.status)
        changes: dict[str, Any] = {}
        if "status" in given and body.status is not None:
            try:
                if check_measure_status(measure.status, body.status):
                    changes["status"] = body.status
            except IllegalMeasureStatus as exc:
                raise Problem(409, "Measure status change not allowed", f"A {exc.current} measure cannot become "
                              f"{exc.wanted}; allowed: {', '.join(exc.allowed) or 'none'}.", type_=ILLEGAL,
                              current_status=exc.current, wanted_status=exc.wanted, allowed=exc.allowed) from exc
        if "end_date" in given and body.end_date != measure.end_date:
            if body.end_date is not None and body.end_date < measure.start_date:
                raise invalid(["body", "end_date"], f"before the measure's start date "
                              f"{measure.start_date.isoformat()}")
            changes["end_date"] = body.end_date
        if "notes" in given and body.notes != measure.notes:
            changes["notes"] = body.notes
        if "responsible" in given and body.responsible is not None and body.responsible != measure.responsible:
            changes["responsible"] = body.responsible
        if not changes:
            view = await _view(session, object_id)
            return {"measure": next(m for m in view["measures"] if m["id"] == measure_id), "object": view}
        at = now.astimezone(timezone.utc) if now is not None else utcnow()
        if "status" in changes:
            changes["status_history"] = [*(measure.status_history or []), {
                "from": measure.status, "to": changes["status"], "at": at.isoformat(), "by": principal.subject}]
        await session.execute(update(monitoring_measures).where(monitoring_measures.c.id == measure_id).values(
            **changes, updated_at=at, updated_by=principal.subject))
        await session.execute(update(monitoring_objects).where(monitoring_objects.c.id == object_id).values(
            version=row.version + 1))
        snapshot = await load_household(session, row.household_id, principal)
        view = await _view(session, object_id)
        await publish_object_event(session, EVENT_MEASURE_UPDATED, view, snapshot, actor=principal.subject)
    return {"measure": next(m for m in view["measures"] if m["id"] == measure_id), "object": view}


# ---------------------------------------------------------------- reads

async def get_object(session: AsyncSession, object_id: str, principal: Principal) -> dict:
    row = await load_object_row(session, object_id, principal)
    return await object_dict(session, row, allowed_actions(state_of_row(row)))


async def household_objects(session: AsyncSession, household_id: str) -> list[dict]:
    """Every case of the household, newest first (the caller has checked the household's area)."""
    rows = (await session.execute(select(monitoring_objects).where(monitoring_objects.c.household_id == household_id)
                                  .order_by(monitoring_objects.c.case_no.desc()))).all()
    return [await object_dict(session, row, allowed_actions(state_of_row(row))) for row in rows]


async def list_objects(session: AsyncSession, principal: Principal, *, category: str | None, step: str | None,
                       status: str | None, area: str | None, household_id: str | None, older_than_days: int | None,
                       now: datetime, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Longest at their current step first, by (step_at, id); ``older_than_days``: at the current step for at
    least that many days."""
    table = monitoring_objects
    query = select(table).where(*area_filter(table, principal, area)).order_by(table.c.step_at, table.c.id)
    query = query.limit(limit + 1)
    if category:
        query = query.where(table.c.category == category)
    if step:
        query = query.where(table.c.step == step)
    if status:
        query = query.where(table.c.status == status)
    if household_id:
        query = query.where(table.c.household_id == household_id)
    if older_than_days is not None:
        query = query.where(table.c.step_at <= now.astimezone(timezone.utc) - timedelta(days=older_than_days))
    if cursor:
        at, object_id = parse_time_cursor(cursor)
        query = query.where(tuple_(table.c.step_at, table.c.id) > tuple_(at, object_id))
    rows = (await session.execute(query)).all()
    next_cursor = time_cursor(rows[limit - 1].step_at, rows[limit - 1].id) if len(rows) > limit else None
    return [await object_dict(session, row, allowed_actions(state_of_row(row))) for row in rows[:limit]], next_cursor
