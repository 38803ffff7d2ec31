"""Procedures on households: the pure machine (machine.py) plus persistence, benefits and events.

Each transition is one unit of work: the household's new version, the procedure position, the step
record and the events are committed together or not at all. ``propose_exit`` and ``approve_exit``
ask benefits for the exit-readiness assessment *before* the transaction opens (no row lock is held
across an HTTP call); the transaction then checks the household did not change meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.benefits_client import BenefitsClient
from services.registry.households import service as households
from services.registry.outbox import publish_household_event
from services.registry.tables import household_procedures, procedure_steps
from services.registry.workflows.machine import (
    EVENT_REMOVED, EVENT_STATUS_CHANGED, NOTICE_POSITIONS, POSITIONS, ExitNotReady, ExitReadiness,
    IllegalTransition, NoticePeriodNotElapsed, Position, PrivilegeRequired, ProcedureState, ReasonRequired,
    RelocationNotMovedIn, TransitionContext, UnknownAction, allowed_actions, apply_action,
)
from shared.auth import Principal
from shared.db import transaction
from shared.events import as_aware, utcnow
from shared.problems import Problem

EVENT_PROCEDURE_STEP = "household.procedure_step"
EXIT_ACTIONS_NEEDING_READINESS = ("propose_exit", "approve_exit")
ILLEGAL = "https://jingzhun.dev/problems/illegal-transition"


@dataclass(frozen=True)
class TransitionRequest:
    action: str
    reason: str | None = None
    override: bool = False
    as_of: date | None = None


async def _procedure_row(session: AsyncSession, household_id: str):
    return (await session.execute(select(household_procedures).where(
        household_procedures.c.household_id == household_id))).first()


def state_of(snapshot: dict, row) -> ProcedureState:
    """The machine's view of a household: status from the snapshot, the running step from the row."""
    procedure = step = started = ends = None
    if row is not None and row.procedure:
        candidate = Position(snapshot["status"], row.procedure, row.step)
        if candidate in POSITIONS:  # a step left over from an earlier status is ignored
            procedure, step = row.procedure, row.step
            started, ends = as_aware(row.notice_started_at), as_aware(row.notice_ends_at)
            if candidate not in NOTICE_POSITIONS:
                started = ends = None
    exit_date = snapshot.get("exit_date")
    return ProcedureState(status=snapshot["status"], procedure=procedure, step=step, notice_started_at=started,
                          notice_ends_at=ends, exit_date=date.fromisoformat(exit_date) if exit_date else None,
                          identified_year=snapshot.get("identified_year"),
                          flags=frozenset({"marginal"} & set(snapshot.get("categories") or [])))


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps wall time without the offset: store UTC everywhere so reads agree.
    return value.astimezone(timezone.utc) if value is not None else None


def _illegal(exc: IllegalTransition, state: ProcedureState) -> Problem:
    status = 403 if isinstance(exc, PrivilegeRequired) else 422 if isinstance(exc, UnknownAction) else 409
    return Problem(status, "Transition not allowed", str(exc), type_=ILLEGAL, action=exc.action,
                   current_status=str(state.status), procedure=state.procedure and str(state.procedure),
                   step=state.step, allowed_actions=exc.allowed_actions)


def _refusal(exc: Exception, state: ProcedureState, privileged: bool) -> Problem:
    allowed = allowed_actions(state, privileged=privileged)
    if isinstance(exc, IllegalTransition):
        return _illegal(exc, state)
    if isinstance(exc, ReasonRequired):
        return Problem(422, "Reason required", str(exc), type_="https://jingzhun.dev/problems/validation",
                       errors=[{"loc": ["body", "reason"], "msg": str(exc)}])
    if isinstance(exc, NoticePeriodNotElapsed):
        return Problem(409, "Public notice period still running", str(exc), type_=ILLEGAL,
                       notice_ends_at=exc.until.isoformat(), allowed_actions=allowed)
    if isinstance(exc, RelocationNotMovedIn):
        return Problem(409, "Relocated household has not moved in", str(exc),
                       type_="https://jingzhun.dev/problems/exit-not-ready", unmet=exc.unmet, overridable=False,
                       allowed_actions=allowed)
    if isinstance(exc, ExitNotReady):
        return Problem(409, "Exit criteria not met", str(exc), type_="https://jingzhun.dev/problems/exit-not-ready",
                       unmet=exc.unmet, overridable=True, allowed_actions=allowed)
    raise exc


def procedure_view(household_id: str, snapshot: dict, row, privileged: bool) -> dict[str, Any]:
    state = state_of(snapshot, row)
    return {"household_id": household_id, "status": str(state.status),
            "procedure": state.procedure and str(state.procedure), "step": state.step,
            "notice_started_at": state.notice_started_at and state.notice_started_at.isoformat(),
            "notice_ends_at": state.notice_ends_at and state.notice_ends_at.isoformat(),
            "override": row.override if row is not None and state.procedure else None,
            "allowed_actions": allowed_actions(state, privileged=privileged)}


def _step_dict(row) -> dict[str, Any]:
    return {"id": row.id, "household_version": row.household_version, "procedure": row.procedure,
            "action": row.action, "outcome": row.outcome, "from_status": row.from_status,
            "to_status": row.to_status, "actor": row.actor, "at": as_aware(row.at).isoformat(),
            "reason": row.reason, "note": row.note, "override": row.override,
            "overridden_criteria": row.overridden_criteria, "assessment": row.assessment}


async def read_procedure(session: AsyncSession, household_id: str, principal: Principal) -> dict[str, Any]:
    snapshot = await households.load_household(session, household_id, principal)
    view = procedure_view(household_id, snapshot, await _procedure_row(session, household_id), principal.is_admin)
    rows = (await session.execute(select(procedure_steps).where(procedure_steps.c.household_id == household_id)
                                  .order_by(procedure_steps.c.id))).all()
    return {**view, "steps": [_step_dict(row) for row in rows]}


async def transition(sessionmaker: async_sessionmaker[AsyncSession], household_id: str, request: TransitionRequest,
                     principal: Principal, *, now: datetime, notice_period: timedelta,
                     benefits: BenefitsClient, if_match: str | None) -> dict[str, Any]:
    # 1. read-only: where does the household stand, and does this action need benefits?
    async with sessionmaker() as session:
        seen = await households.load_household(session, household_id, principal)
        households.check_if_match(if_match, seen["version"])
        state = state_of(seen, await _procedure_row(session, household_id))
    readiness: ExitReadiness | None = None
    assessment = None
    if request.action in EXIT_ACTIONS_NEEDING_READINESS and request.action in allowed_actions(
            state, privileged=principal.is_admin):
        readiness, assessment = await benefits.exit_readiness(seen, request.as_of or now.date())

    # 2. one transaction: re-check, apply, persist, publish.
    async with transaction(sessionmaker) as session:
        before = await households.load_household(session, household_id, principal, for_update=True)
        if before["version"] != seen["version"]:
            raise Problem(412, "Version mismatch", "The household changed while its exit readiness was being "
                          "assessed; retry.", type_="https://jingzhun.dev/problems/stale-version",
                          current_version=before["version"])
        row = await _procedure_row(session, household_id)
        state = state_of(before, row)
        override, reason = request.override, request.reason
        if request.action == "approve_exit" and row is not None and row.override and state.procedure:
            # the proposal was made despite unmet criteria; its override carries to approval
            override, reason = True, reason or row.override.get("reason")
        relocation = before.get("relocation") or {}
        context = TransitionContext(actor=principal.subject, privileged=principal.is_admin, reason=reason,
                                    override=override, notice_period=notice_period, exit_readiness=readiness,
                                    relocated=bool(relocation.get("relocated")),
                                    moved_in=bool(relocation.get("moved_in")))
        try:
            result = apply_action(state, request.action, now=now, context=context)
        except (IllegalTransition, ReasonRequired, NoticePeriodNotElapsed, ExitNotReady) as exc:
            raise _refusal(exc, state, principal.is_admin) from exc
        new, step = result.new_state, result.step_record

        after = dict(before)
        after["status"] = str(new.status)
        if new.exit_date != state.exit_date:
            after["exit_date"] = new.exit_date.isoformat() if new.exit_date else None
        if new.identified_year != state.identified_year:
            after["identified_year"] = new.identified_year
        step_dict = step.to_dict()
        event_type = EVENT_STATUS_CHANGED if EVENT_STATUS_CHANGED in result.events else EVENT_PROCEDURE_STEP
        extra = {"transition": step_dict, "from_status": str(state.status), "to_status": str(new.status)}
        if step.override:
            extra["override"] = {"reason": step.reason, "overridden_criteria": list(step.overridden_criteria)}
        snapshot = await households.save_new_version(
            session, before, after, event_type=event_type, actor=principal.subject,
            note=f"{request.action}: {step.reason}" if step.reason else request.action, extra=extra)
        for extra_event in result.events:
            if extra_event not in (EVENT_STATUS_CHANGED, event_type) and extra_event == EVENT_REMOVED:
                await publish_household_event(session, EVENT_REMOVED, snapshot, actor=principal.subject,
                                              extra=extra)

        override_record = ({"reason": step.reason, "criteria": list(step.overridden_criteria),
                            "actor": principal.subject, "at": now.isoformat()}
                           if step.override and new.procedure else
                           (row.override if row is not None and new.procedure and row.procedure == new.procedure
                            else None))
        values = {"procedure": new.procedure and str(new.procedure), "step": new.step,
                  "notice_started_at": _utc(new.notice_started_at), "notice_ends_at": _utc(new.notice_ends_at),
                  "override": override_record, "updated_at": utcnow()}
        if row is None:
            await session.execute(insert(household_procedures).values(household_id=household_id, **values))
        else:
            await session.execute(update(household_procedures)
                                  .where(household_procedures.c.household_id == household_id).values(**values))
        await session.execute(insert(procedure_steps).values(
            household_id=household_id, household_version=snapshot["version"],
            procedure=step.procedure and str(step.procedure), action=step.action, outcome=step.outcome,
            from_status=str(step.from_status), to_status=str(step.to_status), actor=step.actor, at=_utc(step.at),
            reason=step.reason, note=step.note, override=step.override,
            overridden_criteria=list(step.overridden_criteria), assessment=assessment))
        row = await _procedure_row(session, household_id)
    return {"household": snapshot, "step": {**step_dict, "household_version": snapshot["version"],
                                            "assessment": assessment},
            "procedure": procedure_view(household_id, snapshot, row, principal.is_admin)}
