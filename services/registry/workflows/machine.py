"""Household procedures as a pure state machine (no I/O, no clock).

Status lifecycle (PROGRAMS.md §0)::

    candidate ──identification──▶ registered ──exit──▶ exited ──▶ monitored
        │                             ▲                   │            │
        └──(marginal)──▶ monitored    └── returned ◀──────┴────────────┘
    any status except removed ──remove──▶ removed

Procedures with several steps keep the household in its status while they run;
``ProcedureState.procedure`` / ``step`` say which step was completed last.

* identification (两入户、两评议、两公示、两审核、一公告, 003 L37; 农户申请 → 村级评议 →
  乡镇审核 → 县级复核, 004 L96): ``apply`` → ``village_review`` → ``public_notice``
  (starts the notice period) → ``township_review`` (only once the notice period has
  elapsed) → ``county_approval`` → ``announce`` (status ``registered``).
  ``register`` completes identification in one step, for privileged (admin) callers only.
* exit (脱贫退出, "严格执行贫困退出标准和程序", 004 L196): ``propose_exit`` (checks the
  exit-readiness assessment and starts the notice period) → ``approve_exit`` (once the
  notice period has elapsed; status ``exited``, sets ``exit_date``); ``reject_exit`` /
  ``withdraw_exit`` abandon the proposal. A relocated household cannot exit before it has
  moved in, override or not (001 L929).
* ``return_to_poverty`` (返贫), ``remove`` (剔除, 004 L180), ``start_monitoring`` /
  ``end_monitoring`` (防返贫监测).

The transition table ``TRANSITIONS`` is data; ``apply_action`` interprets it.
Dates derived from ``now`` (``exit_date``, ``identified_year``) are taken in ``now``'s
own time zone, so pass China-local aware datetimes (Asia/Shanghai) to get China dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Callable, Mapping, NamedTuple

__all__ = [
    "Status",
    "Procedure",
    "Position",
    "Transition",
    "ProcedureState",
    "ExitReadiness",
    "TransitionContext",
    "StepRecord",
    "TransitionResult",
    "WorkflowError",
    "IllegalTransition",
    "UnknownAction",
    "PrivilegeRequired",
    "ExitNotReady",
    "RelocationNotMovedIn",
    "ReasonRequired",
    "NoticePeriodNotElapsed",
    "MissingExitReadiness",
    "TRANSITIONS",
    "POSITIONS",
    "ACTIONS",
    "GUARDS",
    "DEFAULT_NOTICE_PERIOD",
    "RELOCATION_NOT_MOVED_IN",
    "EVENT_STATUS_CHANGED",
    "EVENT_REMOVED",
    "IDENTIFICATION_STEPS",
    "allowed_actions",
    "apply_action",
]

# "公示" lasts 7 days unless the pack says otherwise (default, not in seeds).
DEFAULT_NOTICE_PERIOD = timedelta(days=7)
# Unmet criterion reported when a relocated household has not moved in yet (001 L929).
RELOCATION_NOT_MOVED_IN = "relocation_moved_in"

EVENT_STATUS_CHANGED = "household.status_changed"
EVENT_REMOVED = "household.removed"

# Flag a caller sets on the state when the household carries the category `marginal` (边缘户).
FLAG_MARGINAL = "marginal"


class Status(StrEnum):
    CANDIDATE = "candidate"
    REGISTERED = "registered"
    EXITED = "exited"
    MONITORED = "monitored"
    RETURNED = "returned"
    REMOVED = "removed"


class Procedure(StrEnum):
    IDENTIFICATION = "identification"
    EXIT = "exit"


IDENTIFICATION_STEPS: tuple[str, ...] = (
    "apply",
    "village_review",
    "public_notice",
    "township_review",
    "county_approval",
    "announce",
)


class Position(NamedTuple):
    """Where a household stands: its status and the last completed procedure step."""

    status: Status
    procedure: Procedure | None = None
    step: str | None = None

    def __str__(self) -> str:
        if self.procedure is None:
            return str(self.status)
        return f"{self.status} ({self.procedure}: {self.step})"


_C, _R, _E, _M, _RT, _X = (
    Status.CANDIDATE,
    Status.REGISTERED,
    Status.EXITED,
    Status.MONITORED,
    Status.RETURNED,
    Status.REMOVED,
)
_ID, _EXIT = Procedure.IDENTIFICATION, Procedure.EXIT

CANDIDATE = Position(_C)
ID_APPLIED = Position(_C, _ID, "apply")
ID_VILLAGE_REVIEWED = Position(_C, _ID, "village_review")
ID_NOTICE = Position(_C, _ID, "public_notice")
ID_TOWNSHIP_REVIEWED = Position(_C, _ID, "township_review")
ID_COUNTY_APPROVED = Position(_C, _ID, "county_approval")
REGISTERED = Position(_R)
REGISTERED_EXIT_PROPOSED = Position(_R, _EXIT, "propose_exit")
EXITED = Position(_E)
MONITORED = Position(_M)
RETURNED = Position(_RT)
RETURNED_EXIT_PROPOSED = Position(_RT, _EXIT, "propose_exit")
REMOVED = Position(_X)

POSITIONS: tuple[Position, ...] = (
    CANDIDATE,
    ID_APPLIED,
    ID_VILLAGE_REVIEWED,
    ID_NOTICE,
    ID_TOWNSHIP_REVIEWED,
    ID_COUNTY_APPROVED,
    REGISTERED,
    REGISTERED_EXIT_PROPOSED,
    EXITED,
    MONITORED,
    RETURNED,
    RETURNED_EXIT_PROPOSED,
    REMOVED,
)
# Positions during which a public notice (公示) is running.
NOTICE_POSITIONS = frozenset({ID_NOTICE, REGISTERED_EXIT_PROPOSED, RETURNED_EXIT_PROPOSED})
_IDENTIFICATION_POSITIONS = tuple(p for p in POSITIONS if p.procedure is _ID)
_EXIT_PROPOSED_POSITIONS = (REGISTERED_EXIT_PROPOSED, RETURNED_EXIT_PROPOSED)


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: what an action does from one position."""

    to: Position
    outcome: str
    guard: str | None = None  # name in GUARDS; the row applies only if it holds
    reason_required: bool = False
    privileged: bool = False  # only callers holding `admin`
    starts_notice: bool = False
    requires_notice_elapsed: bool = False
    # exit-readiness gate: "required" (assessment must be passed in), "if_given"
    # (re-check whatever the caller passes: the proposal's assessment may be stale), None
    exit_readiness: str | None = None
    sets_exit_date: bool = False
    sets_identified_year: bool = False
    extra_events: tuple[str, ...] = ()
    note: str | None = None


def _same_status(p: Position) -> Position:
    return Position(p.status)


# (position, action) -> candidate rows, first one whose guard holds wins.
TRANSITIONS: dict[tuple[Position, str], tuple[Transition, ...]] = {
    # identification (精准识别)
    (CANDIDATE, "apply"): (Transition(ID_APPLIED, "applied"),),
    (ID_APPLIED, "village_review"): (
        Transition(ID_VILLAGE_REVIEWED, "village_review_passed"),
    ),
    (ID_VILLAGE_REVIEWED, "public_notice"): (
        Transition(ID_NOTICE, "notice_started", starts_notice=True),
    ),
    (ID_NOTICE, "township_review"): (
        Transition(ID_TOWNSHIP_REVIEWED, "township_review_passed", requires_notice_elapsed=True),
    ),
    (ID_TOWNSHIP_REVIEWED, "county_approval"): (
        Transition(ID_COUNTY_APPROVED, "county_approved"),
    ),
    (ID_COUNTY_APPROVED, "announce"): (
        Transition(REGISTERED, "registered", sets_identified_year=True),
    ),
    **{
        (p, "reject_identification"): (
            Transition(CANDIDATE, "identification_rejected", reason_required=True),
        )
        for p in _IDENTIFICATION_POSITIONS
    },
    **{
        (p, "register"): (
            Transition(
                REGISTERED,
                "registered",
                privileged=True,
                sets_identified_year=True,
                note="identification completed by privileged shortcut",
            ),
        )
        for p in (CANDIDATE, *_IDENTIFICATION_POSITIONS)
    },
    # exit (脱贫退出)
    (REGISTERED, "propose_exit"): (
        Transition(
            REGISTERED_EXIT_PROPOSED, "exit_proposed", starts_notice=True, exit_readiness="required"
        ),
    ),
    (RETURNED, "propose_exit"): (
        Transition(
            RETURNED_EXIT_PROPOSED, "exit_proposed", starts_notice=True, exit_readiness="required"
        ),
    ),
    **{
        (p, "approve_exit"): (
            Transition(
                EXITED,
                "exited",
                requires_notice_elapsed=True,
                sets_exit_date=True,
                exit_readiness="if_given",
            ),
        )
        for p in _EXIT_PROPOSED_POSITIONS
    },
    **{
        (p, "reject_exit"): (
            Transition(_same_status(p), "exit_rejected", reason_required=True),
        )
        for p in _EXIT_PROPOSED_POSITIONS
    },
    **{
        (p, "withdraw_exit"): (
            Transition(_same_status(p), "exit_withdrawn", reason_required=True),
        )
        for p in _EXIT_PROPOSED_POSITIONS
    },
    # return to poverty (返贫): only a household that has exited can return
    (EXITED, "return_to_poverty"): (Transition(RETURNED, "returned"),),
    (MONITORED, "return_to_poverty"): (
        Transition(RETURNED, "returned", guard="has_exited"),
    ),
    # anti-return monitoring (防返贫监测)
    (EXITED, "start_monitoring"): (Transition(MONITORED, "monitoring_started"),),
    (CANDIDATE, "start_monitoring"): (
        Transition(MONITORED, "monitoring_started", guard="marginal"),
    ),
    (MONITORED, "end_monitoring"): (
        Transition(EXITED, "monitoring_ended", guard="has_exited"),
        Transition(CANDIDATE, "monitoring_ended", guard="never_exited"),
    ),
    # removal (剔除) from anywhere but removed; abandons any running procedure
    **{
        (p, "remove"): (
            Transition(REMOVED, "removed", reason_required=True, extra_events=(EVENT_REMOVED,)),
        )
        for p in POSITIONS
        if p.status is not _X
    },
}

ACTIONS: tuple[str, ...] = tuple(sorted({action for _, action in TRANSITIONS}))


# ---------------------------------------------------------------- state and context


def _require_aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class ProcedureState:
    """The procedure-relevant part of a household.

    ``flags``: ``"marginal"`` when the household carries the category marginal (边缘户).
    ``exit_date`` doubles as "has exited before" (it is kept after a return to poverty).
    """

    status: Status
    procedure: Procedure | None = None
    step: str | None = None
    notice_started_at: datetime | None = None
    notice_ends_at: datetime | None = None
    exit_date: date | None = None
    identified_year: int | None = None
    flags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.procedure is not None:
            object.__setattr__(self, "procedure", Procedure(self.procedure))
        object.__setattr__(self, "flags", frozenset(self.flags))
        position = Position(self.status, self.procedure, self.step)
        if position not in POSITIONS:
            raise ValueError(f"not a reachable household position: {position}")
        _require_aware(self.notice_started_at, "notice_started_at")
        _require_aware(self.notice_ends_at, "notice_ends_at")
        if position in NOTICE_POSITIONS and self.notice_started_at is None:
            raise ValueError(f"{position} needs notice_started_at")

    @property
    def position(self) -> Position:
        return Position(self.status, self.procedure, self.step)

    @property
    def is_marginal(self) -> bool:
        return FLAG_MARGINAL in self.flags

    def notice_until(self, notice_period: timedelta = DEFAULT_NOTICE_PERIOD) -> datetime | None:
        """End of the running notice period (the one fixed when it started, if stored)."""
        if self.notice_started_at is None:
            return None
        return self.notice_ends_at or self.notice_started_at + notice_period


GUARDS: dict[str, Callable[[ProcedureState], bool]] = {
    "marginal": lambda s: s.is_marginal,
    "has_exited": lambda s: s.exit_date is not None,
    "never_exited": lambda s: s.exit_date is None,
}


@dataclass(frozen=True, slots=True)
class ExitReadiness:
    """The benefits service's ``exit_readiness`` assessment, as far as exit needs it."""

    ready: bool
    unmet: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "unmet", tuple(self.unmet))

    @classmethod
    def from_assessment(cls, assessment: Mapping[str, Any]) -> ExitReadiness:
        """From the wire form ``{"kind": "exit_readiness", "result": bool, "unmet": [...]}``."""
        kind = assessment.get("kind", "exit_readiness")
        if kind != "exit_readiness":
            raise ValueError(f"expected an exit_readiness assessment, got {kind!r}")
        return cls(ready=bool(assessment["result"]), unmet=tuple(assessment.get("unmet") or ()))


@dataclass(frozen=True, slots=True)
class TransitionContext:
    actor: str
    privileged: bool = False  # caller holds `admin`
    reason: str | None = None
    override: bool = False  # exit despite unmet criteria (needs a reason)
    notice_period: timedelta = DEFAULT_NOTICE_PERIOD
    exit_readiness: ExitReadiness | None = None
    relocated: bool = False
    moved_in: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.actor, str) or not self.actor.strip():
            raise ValueError("actor is required")
        if self.notice_period < timedelta(0):
            raise ValueError("notice_period must not be negative")

    @property
    def clean_reason(self) -> str | None:
        if self.reason is None:
            return None
        return self.reason.strip() or None


@dataclass(frozen=True, slots=True)
class StepRecord:
    action: str
    actor: str
    at: datetime
    outcome: str
    from_status: Status
    to_status: Status
    procedure: Procedure | None
    reason: str | None = None
    note: str | None = None
    override: bool = False
    overridden_criteria: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``at`` as RFC 3339)."""
        return {
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "from_status": str(self.from_status),
            "to_status": str(self.to_status),
            "procedure": None if self.procedure is None else str(self.procedure),
            "reason": self.reason,
            "note": self.note,
            "override": self.override,
            "overridden_criteria": list(self.overridden_criteria),
        }


@dataclass(frozen=True, slots=True)
class TransitionResult:
    new_state: ProcedureState
    step_record: StepRecord
    events: tuple[str, ...]


# ---------------------------------------------------------------- errors


class WorkflowError(Exception):
    """Base for every refusal of the machine."""


class IllegalTransition(WorkflowError):
    """The action is not possible from the household's position (HTTP 409)."""

    def __init__(
        self,
        action: str,
        current_status: str,
        allowed_actions: list[str],
        *,
        position: Position | None = None,
        message: str | None = None,
    ) -> None:
        self.action = action
        self.current_status = str(current_status)
        self.allowed_actions = list(allowed_actions)
        self.position = position
        where = str(position) if position is not None else self.current_status
        super().__init__(
            message
            or f"action {action!r} is not allowed for a household in {where}; "
            f"allowed: {', '.join(self.allowed_actions) or 'none'}"
        )


class UnknownAction(IllegalTransition):
    """The action name is not one the machine knows."""


class PrivilegeRequired(IllegalTransition):
    """The action exists from here but only for privileged (admin) callers (HTTP 403)."""


class ExitNotReady(WorkflowError):
    """The exit-readiness assessment has unmet criteria and there is no valid override."""

    overridable = True

    def __init__(self, unmet: list[str], message: str | None = None) -> None:
        self.unmet = list(unmet)
        super().__init__(
            message
            or "household does not meet the exit criteria: "
            + ", ".join(self.unmet)
            + " (override=true with a reason to exit anyway)"
        )


class RelocationNotMovedIn(ExitNotReady):
    """Relocated households cannot exit before moving in (001 L929); no override."""

    overridable = False

    def __init__(self, unmet: list[str]) -> None:
        super().__init__(
            unmet,
            "a relocated household cannot exit before it has moved into the resettlement "
            "house (no override possible); unmet: " + ", ".join(unmet),
        )


class ReasonRequired(WorkflowError):
    def __init__(self, action: str, message: str | None = None) -> None:
        self.action = action
        super().__init__(message or f"action {action!r} requires a non-empty reason")


class NoticePeriodNotElapsed(WorkflowError):
    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(f"the public notice period runs until {until.isoformat()}")


class MissingExitReadiness(WorkflowError, ValueError):
    """Caller bug: propose_exit needs the exit-readiness assessment."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"action {action!r} needs an exit_readiness assessment in the context")


# ---------------------------------------------------------------- interpreter


def _applicable(state: ProcedureState, action: str) -> Transition | None:
    for row in TRANSITIONS.get((state.position, action), ()):
        if row.guard is None or GUARDS[row.guard](state):
            return row
    return None


def allowed_actions(state: ProcedureState, *, privileged: bool = False) -> list[str]:
    """Actions possible from ``state`` for this caller, sorted."""
    return [
        action
        for action in ACTIONS
        if (row := _applicable(state, action)) is not None and (privileged or not row.privileged)
    ]


def _check_exit_readiness(
    action: str, context: TransitionContext, required: bool
) -> tuple[bool, tuple[str, ...]]:
    """Return (override applied, overridden criteria) or raise."""
    readiness = context.exit_readiness
    if readiness is None and required:
        raise MissingExitReadiness(action)
    unmet: list[str] = list(readiness.unmet) if readiness is not None else []
    if readiness is not None and not readiness.ready and not unmet:
        unmet = ["exit_readiness"]
    if readiness is not None and readiness.ready:
        # a passing assessment may still list nothing; trust `ready`, except the hard gate below
        unmet = [u for u in unmet if u == RELOCATION_NOT_MOVED_IN]
    if context.relocated and not context.moved_in and RELOCATION_NOT_MOVED_IN not in unmet:
        unmet.append(RELOCATION_NOT_MOVED_IN)
    if RELOCATION_NOT_MOVED_IN in unmet:
        raise RelocationNotMovedIn(unmet)
    if not unmet:
        return False, ()
    if not context.override:
        raise ExitNotReady(unmet)
    if context.clean_reason is None:
        raise ReasonRequired(
            action, f"overriding unmet exit criteria ({', '.join(unmet)}) requires a reason"
        )
    return True, tuple(unmet)


def apply_action(
    state: ProcedureState,
    action: str,
    *,
    now: datetime,
    context: TransitionContext,
) -> TransitionResult:
    """Apply ``action`` to ``state``; return the new state, the step to record and the events.

    Raises ``IllegalTransition`` (or its subclasses ``UnknownAction``,
    ``PrivilegeRequired``), ``ReasonRequired``, ``NoticePeriodNotElapsed``,
    ``ExitNotReady`` (or ``RelocationNotMovedIn``) and ``MissingExitReadiness``.
    Never mutates ``state``.
    """
    _require_aware(now, "now")
    allowed = allowed_actions(state, privileged=context.privileged)
    if action not in ACTIONS:
        raise UnknownAction(
            action, state.status, allowed, position=state.position,
            message=f"unknown action {action!r}; allowed: {', '.join(allowed) or 'none'}",
        )
    row = _applicable(state, action)
    if row is None:
        raise IllegalTransition(action, state.status, allowed, position=state.position)
    if row.privileged and not context.privileged:
        raise PrivilegeRequired(
            action, state.status, allowed, position=state.position,
            message=f"action {action!r} requires the admin scope; "
            f"allowed: {', '.join(allowed) or 'none'}",
        )
    reason = context.clean_reason
    if row.reason_required and reason is None:
        raise ReasonRequired(action)
    if row.requires_notice_elapsed:
        until = state.notice_until(context.notice_period)
        assert until is not None  # guaranteed by ProcedureState validation
        if now < until:
            raise NoticePeriodNotElapsed(until)

    override, overridden = False, ()
    if row.exit_readiness is not None:
        override, overridden = _check_exit_readiness(
            action, context, required=row.exit_readiness == "required"
        )

    to = row.to
    changes: dict[str, Any] = {
        "status": to.status,
        "procedure": to.procedure,
        "step": to.step,
        "notice_started_at": None,
        "notice_ends_at": None,
    }
    if row.starts_notice:
        changes["notice_started_at"] = now
        changes["notice_ends_at"] = now + context.notice_period
    if row.sets_exit_date:
        changes["exit_date"] = now.date()
    if row.sets_identified_year and state.identified_year is None:
        changes["identified_year"] = now.year
    new_state = replace(state, **changes)

    events: tuple[str, ...] = ()
    if new_state.status != state.status:
        events = (EVENT_STATUS_CHANGED, *row.extra_events)
    else:
        events = row.extra_events

    record = StepRecord(
        action=action,
        actor=context.actor,
        at=now,
        outcome=row.outcome,
        from_status=state.status,
        to_status=new_state.status,
        procedure=state.procedure or to.procedure,
        reason=reason,
        note=row.note,
        override=override,
        overridden_criteria=overridden,
    )
    return TransitionResult(new_state=new_state, step_record=record, events=events)
