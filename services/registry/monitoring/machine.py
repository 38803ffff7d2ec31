"""Monitoring objects' procedures as a pure, data-driven state machine (no I/O, no clock).

防止返贫动态监测和帮扶 (中农组发〔2021〕7号; docs/monitoring.md)::

    identifying ──nine steps──▶ monitored ──propose_elimination──▶ eliminating ──five steps──▶ eliminated
         │                          ▲                                   │
         └──dismiss──▶ dismissed    └────────withdraw_elimination───────┘

* identification (核查认定), nine steps in order: ``risk_warning`` → ``home_verification`` →
  ``household_commitment`` → ``information_comparison`` → ``democratic_appraisal`` →
  ``village_notice`` (starts the notice period) → ``township_review`` (once the notice period has
  elapsed) → ``county_approval`` → ``data_entry`` (status ``monitored``, sets ``identified_at``).
  ``dismiss`` (verification found no risk; reason required) from any identifying position.
* risk elimination (风险消除), six steps: ``propose_elimination`` (status ``eliminating``; benefits'
  elimination criteria must hold) → ``home_verification`` → ``democratic_appraisal`` →
  ``village_notice`` (starts the notice period) → ``township_confirmation`` (once it has elapsed) →
  ``county_confirmation`` (criteria checked again; status ``eliminated``, sets ``eliminated_at``).
  ``withdraw_elimination`` (reason required) returns an eliminating object to ``monitored``.
* Separation of duties: an approving step (``township_review``, ``county_approval``,
  ``township_confirmation``, ``county_confirmation``) may not be completed by the actor who completed
  the step before it.

``TRANSITIONS`` is data; ``apply_action`` interprets it, as ``services/registry/workflows/machine.py``.

An assistance measure's own status moves by ``MEASURE_TRANSITIONS`` (data too): ``planned`` →
``in_progress`` | ``cancelled``, ``in_progress`` → ``completed`` | ``cancelled``; ``completed`` and
``cancelled`` are final. ``check_measure_status`` refuses any other change (``IllegalMeasureStatus``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping, NamedTuple

DEFAULT_NOTICE_PERIOD = timedelta(days=5)

EVENT_OBJECT_OPENED = "monitoring.object_opened"
EVENT_STEP_COMPLETED = "monitoring.step_completed"
EVENT_MEASURE_RECORDED = "monitoring.measure_recorded"
EVENT_MEASURE_UPDATED = "monitoring.measure_updated"
EVENT_RISK_ELIMINATED = "monitoring.risk_eliminated"
EVENT_OBJECT_DISMISSED = "monitoring.object_dismissed"
EVENT_LEAD_RECORDED = "monitoring.lead_recorded"
EVENT_LEAD_DISMISSED = "monitoring.lead_dismissed"


class Status(StrEnum):
    IDENTIFYING = "identifying"
    MONITORED = "monitored"
    ELIMINATING = "eliminating"
    ELIMINATED = "eliminated"
    DISMISSED = "dismissed"


OPEN_STATUSES = (Status.IDENTIFYING, Status.MONITORED, Status.ELIMINATING)


class Procedure(StrEnum):
    IDENTIFICATION = "identification"
    ELIMINATION = "elimination"


CATEGORIES = ("unstable_exited", "marginal_at_risk", "sudden_hardship")
CHANNELS = ("self_report", "cadre_visit", "department", "supervision", "platform")

IDENTIFICATION_STEPS: tuple[str, ...] = (
    "risk_warning", "home_verification", "household_commitment", "information_comparison",
    "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry")
ELIMINATION_STEPS: tuple[str, ...] = (
    "propose_elimination", "home_verification", "democratic_appraisal", "village_notice",
    "township_confirmation", "county_confirmation")
APPROVING_STEPS = frozenset({"township_review", "county_approval", "township_confirmation", "county_confirmation"})
NOTICE_STEP = "village_notice"


class Position(NamedTuple):
    status: Status
    procedure: Procedure | None = None
    step: str | None = None  # the last completed step of the running procedure

    def __str__(self) -> str:
        return str(self.status) if self.step is None else f"{self.status} ({self.procedure}: {self.step})"


@dataclass(frozen=True, slots=True)
class Transition:
    to: Position
    approving: bool = False
    starts_notice: bool = False
    requires_notice_elapsed: bool = False
    elimination_check: bool = False  # benefits' elimination answer must say eligible
    reason_required: bool = False
    sets_identified_at: bool = False
    sets_eliminated_at: bool = False
    event: str = EVENT_STEP_COMPLETED
    household_action: str | None = None  # the household workflow action to take with this step


_I, _M, _E = Status.IDENTIFYING, Status.MONITORED, Status.ELIMINATING
_ID, _EL = Procedure.IDENTIFICATION, Procedure.ELIMINATION

OPENED = Position(_I, _ID, None)
IDENTIFICATION_POSITIONS = (OPENED, *(Position(_I, _ID, s) for s in IDENTIFICATION_STEPS[:-1]))
MONITORED = Position(_M)
ELIMINATION_POSITIONS = tuple(Position(_E, _EL, s) for s in ELIMINATION_STEPS[:-1])
ELIMINATED = Position(Status.ELIMINATED)
DISMISSED = Position(Status.DISMISSED)
POSITIONS = (*IDENTIFICATION_POSITIONS, MONITORED, *ELIMINATION_POSITIONS, ELIMINATED, DISMISSED)
NOTICE_POSITIONS = frozenset({Position(_I, _ID, NOTICE_STEP), Position(_E, _EL, NOTICE_STEP)})


def _chain(positions: tuple[Position, ...], steps: tuple[str, ...], last: Transition) -> dict:
    table = {}
    for index, (here, step) in enumerate(zip(positions, steps)):
        if index == len(steps) - 1:
            row = last
        else:
            row = Transition(Position(here.status, here.procedure, step), approving=step in APPROVING_STEPS,
                             starts_notice=step == NOTICE_STEP,
                             requires_notice_elapsed=index > 0 and steps[index - 1] == NOTICE_STEP)
        table[(here, step)] = (row,)
    return table


TRANSITIONS: dict[tuple[Position, str], tuple[Transition, ...]] = {
    **_chain(IDENTIFICATION_POSITIONS, IDENTIFICATION_STEPS,
             Transition(MONITORED, sets_identified_at=True, household_action="start_monitoring")),
    **{(p, "dismiss"): (Transition(DISMISSED, reason_required=True, event=EVENT_OBJECT_DISMISSED),)
       for p in IDENTIFICATION_POSITIONS},
    (MONITORED, "propose_elimination"): (
        Transition(Position(_E, _EL, "propose_elimination"), elimination_check=True),),
    # from propose_elimination on: each position's next step (ELIMINATION_STEPS[1:])
    **_chain(ELIMINATION_POSITIONS, ELIMINATION_STEPS[1:], Transition(
        ELIMINATED, approving=True, elimination_check=True, sets_eliminated_at=True, event=EVENT_RISK_ELIMINATED,
        household_action="end_monitoring")),
    **{(p, "withdraw_elimination"): (Transition(MONITORED, reason_required=True),) for p in ELIMINATION_POSITIONS},
}
ACTIONS: tuple[str, ...] = tuple(sorted({action for _, action in TRANSITIONS}))


MEASURE_STATUSES: tuple[str, ...] = ("planned", "in_progress", "completed", "cancelled")
MEASURE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "planned": ("in_progress", "cancelled"),
    "in_progress": ("completed", "cancelled"),
    "completed": (),
    "cancelled": (),
}
INACTIVE_MEASURE_STATUSES = frozenset({"cancelled"})  # the plan's checks count every other measure


@dataclass(frozen=True, slots=True)
class ObjectState:
    """The procedure-relevant part of a monitoring object. ``last_actor``: who completed the last step."""

    status: Status
    procedure: Procedure | None = None
    step: str | None = None
    notice_started_at: datetime | None = None
    notice_ends_at: datetime | None = None
    last_actor: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.procedure is not None:
            object.__setattr__(self, "procedure", Procedure(self.procedure))
        if self.position not in POSITIONS:
            raise ValueError(f"not a reachable monitoring position: {self.position}")
        if self.position in NOTICE_POSITIONS and self.notice_started_at is None:
            raise ValueError(f"{self.position} needs notice_started_at")

    @property
    def position(self) -> Position:
        return Position(self.status, self.procedure, self.step)


@dataclass(frozen=True, slots=True)
class EliminationAnswer:
    """Benefits' ``GET /v1/households/{id}/monitoring/elimination`` answer, as the guard needs it."""

    eligible: bool
    explanation: tuple = ()
    body: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> EliminationAnswer:
        return cls(eligible=body.get("eligible") is True, explanation=tuple(body.get("explanation") or ()),
                   body=dict(body))


@dataclass(frozen=True, slots=True)
class StepContext:
    actor: str
    reason: str | None = None
    notice_period: timedelta = DEFAULT_NOTICE_PERIOD
    elimination: EliminationAnswer | None = None

    @property
    def clean_reason(self) -> str | None:
        return (self.reason or "").strip() or None


@dataclass(frozen=True, slots=True)
class StepResult:
    new_state: ObjectState
    transition: Transition
    procedure: Procedure  # the procedure the step belongs to
    step: str


class MonitoringError(Exception):
    """Base for every refusal of the machine."""


class IllegalStep(MonitoringError):
    def __init__(self, action: str, position: Position, allowed: list[str], *, unknown: bool = False) -> None:
        self.action, self.position, self.allowed, self.unknown = action, position, allowed, unknown
        what = "unknown action" if unknown else "action"
        super().__init__(f"{what} {action!r} is not allowed for a monitoring object in {position}; "
                         f"allowed: {', '.join(allowed) or 'none'}")


class SeparationOfDuties(MonitoringError):
    def __init__(self, action: str, actor: str) -> None:
        self.action, self.actor = action, actor
        super().__init__(f"{actor} completed the previous step and may not also complete the approving "
                         f"step {action}")


class StepReasonRequired(MonitoringError):
    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"action {action!r} requires a non-empty reason")


class NoticeRunning(MonitoringError):
    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(f"the village notice period runs until {until.isoformat()}")


class EliminationCriteriaNotMet(MonitoringError):
    def __init__(self, answer: EliminationAnswer) -> None:
        self.answer = answer
        super().__init__("benefits says the household does not meet the risk-elimination criteria")


class IllegalMeasureStatus(MonitoringError):
    def __init__(self, current: str, wanted: str) -> None:
        self.current, self.wanted = current, wanted
        self.allowed = list(MEASURE_TRANSITIONS.get(current, ()))
        super().__init__(f"a {current} measure cannot become {wanted}; allowed: {', '.join(self.allowed) or 'none'}")


def check_measure_status(current: str, wanted: str) -> bool:
    """Whether ``wanted`` changes the measure's status (False: it is the same); raises ``IllegalMeasureStatus``
    for a change ``MEASURE_TRANSITIONS`` does not list."""
    if wanted == current:
        return False
    if wanted not in MEASURE_TRANSITIONS.get(current, ()):
        raise IllegalMeasureStatus(current, wanted)
    return True


class MissingElimination(MonitoringError, ValueError):
    """Caller bug: the step needs benefits' elimination answer in the context."""


def _row(state: ObjectState, action: str) -> Transition | None:
    rows = TRANSITIONS.get((state.position, action), ())
    return rows[0] if rows else None


def allowed_actions(state: ObjectState) -> list[str]:
    return [action for action in ACTIONS if _row(state, action) is not None]


def needs_elimination_answer(state: ObjectState, action: str) -> bool:
    row = _row(state, action)
    return row is not None and row.elimination_check


def apply_step(state: ObjectState, action: str, *, now: datetime, context: StepContext) -> StepResult:
    """Apply ``action``; raises ``IllegalStep``, ``StepReasonRequired``, ``NoticeRunning``,
    ``SeparationOfDuties``, ``EliminationCriteriaNotMet`` or ``MissingElimination``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    row = _row(state, action)
    if row is None:
        raise IllegalStep(action, state.position, allowed_actions(state), unknown=action not in ACTIONS)
    if row.reason_required and context.clean_reason is None:
        raise StepReasonRequired(action)
    if row.requires_notice_elapsed:
        until = state.notice_ends_at or (state.notice_started_at + context.notice_period)  # type: ignore[operator]
        if now < until:
            raise NoticeRunning(until)
    if row.approving and state.last_actor is not None and state.last_actor == context.actor:
        raise SeparationOfDuties(action, context.actor)
    if row.elimination_check:
        if context.elimination is None:
            raise MissingElimination(f"action {action!r} needs benefits' elimination answer")
        if not context.elimination.eligible:
            raise EliminationCriteriaNotMet(context.elimination)
    to = row.to
    changes: dict[str, Any] = {"status": to.status, "procedure": to.procedure, "step": to.step,
                               "notice_started_at": None, "notice_ends_at": None, "last_actor": context.actor}
    if row.starts_notice:
        changes["notice_started_at"] = now
        changes["notice_ends_at"] = now + context.notice_period
    procedure = state.procedure or to.procedure
    assert procedure is not None  # every row starts in or enters a procedure
    return StepResult(new_state=replace(state, **changes), transition=row, procedure=procedure, step=action)
