from dataclasses import FrozenInstanceError
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.workflows.machine import (
    ACTIONS,
    DEFAULT_NOTICE_PERIOD,
    EVENT_REMOVED,
    EVENT_STATUS_CHANGED,
    POSITIONS,
    RELOCATION_NOT_MOVED_IN,
    TRANSITIONS,
    ExitNotReady,
    ExitReadiness,
    IllegalTransition,
    MissingExitReadiness,
    NoticePeriodNotElapsed,
    Position,
    PrivilegeRequired,
    Procedure,
    ProcedureState,
    ReasonRequired,
    RelocationNotMovedIn,
    Status,
    TransitionContext,
    UnknownAction,
    allowed_actions,
    apply_action,
)

CST = timezone(timedelta(hours=8))  # China Standard Time
T0 = datetime(2020, 6, 1, 9, 0, tzinfo=CST)
AFTER_NOTICE = T0 + DEFAULT_NOTICE_PERIOD + timedelta(hours=1)
READY = ExitReadiness(ready=True)
NOT_READY = ExitReadiness(ready=False, unmet=("income_above_line", "housing_safety"))

ID = Procedure.IDENTIFICATION
EX = Procedure.EXIT
C, R, E, M, RT, X = (
    Status.CANDIDATE,
    Status.REGISTERED,
    Status.EXITED,
    Status.MONITORED,
    Status.RETURNED,
    Status.REMOVED,
)


def state(status, procedure=None, step=None, *, exit_date=None, flags=(), notice_started_at=None):
    if notice_started_at is None and (step in ("public_notice", "propose_exit")):
        notice_started_at = T0
    return ProcedureState(
        status=status,
        procedure=procedure,
        step=step,
        notice_started_at=notice_started_at,
        exit_date=exit_date,
        flags=frozenset(flags),
    )


def ctx(**kw):
    kw.setdefault("actor", "cadre-1")
    return TransitionContext(**kw)


# A household in every reachable position (and each guard variant), with the
# legal actions and their targets written out by hand from the brief. Everything
# not listed is illegal.
VARIANTS: dict[str, tuple[ProcedureState, dict[str, tuple[Status, Procedure | None, str | None]]]] = {
    "candidate": (
        state(C),
        {"apply": (C, ID, "apply"), "remove": (X, None, None)},
    ),
    "candidate_marginal": (
        state(C, flags={"marginal"}),
        {"apply": (C, ID, "apply"), "remove": (X, None, None), "start_monitoring": (M, None, None)},
    ),
    "id_applied": (
        state(C, ID, "apply"),
        {
            "village_review": (C, ID, "village_review"),
            "reject_identification": (C, None, None),
            "remove": (X, None, None),
        },
    ),
    "id_village_reviewed": (
        state(C, ID, "village_review"),
        {
            "public_notice": (C, ID, "public_notice"),
            "reject_identification": (C, None, None),
            "remove": (X, None, None),
        },
    ),
    "id_notice": (
        state(C, ID, "public_notice"),
        {
            "township_review": (C, ID, "township_review"),
            "reject_identification": (C, None, None),
            "remove": (X, None, None),
        },
    ),
    "id_township_reviewed": (
        state(C, ID, "township_review"),
        {
            "county_approval": (C, ID, "county_approval"),
            "reject_identification": (C, None, None),
            "remove": (X, None, None),
        },
    ),
    "id_county_approved": (
        state(C, ID, "county_approval"),
        {
            "announce": (R, None, None),
            "reject_identification": (C, None, None),
            "remove": (X, None, None),
        },
    ),
    "registered": (
        state(R),
        {"propose_exit": (R, EX, "propose_exit"), "remove": (X, None, None)},
    ),
    "registered_exit_proposed": (
        state(R, EX, "propose_exit"),
        {
            "approve_exit": (E, None, None),
            "reject_exit": (R, None, None),
            "withdraw_exit": (R, None, None),
            "remove": (X, None, None),
        },
    ),
    "exited": (
        state(E, exit_date=date(2019, 12, 1)),
        {
            "return_to_poverty": (RT, None, None),
            "start_monitoring": (M, None, None),
            "remove": (X, None, None),
        },
    ),
    "monitored_after_exit": (
        state(M, exit_date=date(2019, 12, 1)),
        {
            "return_to_poverty": (RT, None, None),
            "end_monitoring": (E, None, None),
            "remove": (X, None, None),
        },
    ),
    "monitored_marginal_never_registered": (
        state(M, flags={"marginal"}),
        {"end_monitoring": (C, None, None), "remove": (X, None, None)},
    ),
    "returned": (
        state(RT, exit_date=date(2019, 12, 1)),
        {"propose_exit": (RT, EX, "propose_exit"), "remove": (X, None, None)},
    ),
    "returned_exit_proposed": (
        state(RT, EX, "propose_exit", exit_date=date(2019, 12, 1)),
        {
            "approve_exit": (E, None, None),
            "reject_exit": (RT, None, None),
            "withdraw_exit": (RT, None, None),
            "remove": (X, None, None),
        },
    ),
    "removed": (state(X), {}),
}

CANDIDATE_VARIANTS = {
    "candidate",
    "candidate_marginal",
    "id_applied",
    "id_village_reviewed",
    "id_notice",
    "id_township_reviewed",
    "id_county_approved",
}


def expected_legal(name: str, privileged: bool) -> dict[str, tuple]:
    legal = dict(VARIANTS[name][1])
    if privileged and name in CANDIDATE_VARIANTS:
        legal["register"] = (R, None, None)
    return legal


def satisfying_context(privileged: bool) -> TransitionContext:
    """A context under which every legal action goes through."""
    return ctx(privileged=privileged, reason="checked on site", exit_readiness=READY)


CASES = [
    (name, action, privileged)
    for name in VARIANTS
    for action in (*ACTIONS, "no_such_action")
    for privileged in (False, True)
]


def test_variants_cover_every_position_and_every_table_row():
    covered_positions = {s.position for s, _ in VARIANTS.values()}
    assert covered_positions == set(POSITIONS)
    exercised = {
        (VARIANTS[name][0].position, action)
        for name in VARIANTS
        for action in expected_legal(name, privileged=True)
    }
    assert exercised == set(TRANSITIONS)


def test_action_vocabulary():
    assert set(ACTIONS) == {
        "apply", "village_review", "public_notice", "township_review", "county_approval",
        "announce", "register", "reject_identification", "propose_exit", "approve_exit",
        "reject_exit", "withdraw_exit", "return_to_poverty", "remove", "start_monitoring",
        "end_monitoring",
    }  # fmt: skip
    assert list(ACTIONS) == sorted(ACTIONS)


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("privileged", [False, True])
def test_allowed_actions_match_the_spec(name, privileged):
    st_, _ = VARIANTS[name]
    got = allowed_actions(st_, privileged=privileged)
    assert got == sorted(expected_legal(name, privileged))
    assert got == sorted(got)


@pytest.mark.parametrize(("name", "action", "privileged"), CASES)
def test_every_action_from_every_position(name, action, privileged):
    before, _ = VARIANTS[name]
    legal = expected_legal(name, privileged)
    now = AFTER_NOTICE
    if action in legal:
        result = apply_action(before, action, now=now, context=satisfying_context(privileged))
        to_status, to_proc, to_step = legal[action]
        after = result.new_state
        assert (after.status, after.procedure, after.step) == (to_status, to_proc, to_step)
        rec = result.step_record
        assert (rec.action, rec.actor, rec.at) == (action, "cadre-1", now)
        assert (rec.from_status, rec.to_status) == (before.status, to_status)
        assert rec.override is False
        expected_events = ()
        if to_status != before.status:
            expected_events = (EVENT_STATUS_CHANGED,)
        if action == "remove":
            expected_events = (EVENT_STATUS_CHANGED, EVENT_REMOVED)
        assert result.events == expected_events
        assert before == VARIANTS[name][0]  # input untouched
    else:
        with pytest.raises(IllegalTransition) as exc:
            apply_action(before, action, now=now, context=satisfying_context(privileged))
        err = exc.value
        assert err.action == action
        assert err.current_status == before.status
        assert err.allowed_actions == allowed_actions(before, privileged=privileged)
        assert err.allowed_actions == sorted(legal)
        if action == "no_such_action":
            assert isinstance(err, UnknownAction)
        elif action == "register" and name in CANDIDATE_VARIANTS:
            assert isinstance(err, PrivilegeRequired)
            assert "register" not in err.allowed_actions
        else:
            assert type(err) is IllegalTransition


def test_illegal_transition_message_lists_allowed():
    with pytest.raises(IllegalTransition) as exc:
        apply_action(state(E, exit_date=date(2019, 1, 1)), "approve_exit", now=T0, context=ctx())
    assert "remove, return_to_poverty, start_monitoring" in str(exc.value)


def test_removed_is_terminal():
    with pytest.raises(IllegalTransition) as exc:
        apply_action(state(X), "remove", now=T0, context=ctx(reason="again", privileged=True))
    assert exc.value.allowed_actions == []


# ---------------------------------------------------------------- identification


def test_full_identification_procedure():
    s = state(C)
    notice_ctx = ctx(notice_period=timedelta(days=5))
    times = {
        "apply": T0,
        "village_review": T0 + timedelta(days=1),
        "public_notice": T0 + timedelta(days=2),
        "township_review": T0 + timedelta(days=7),
        "county_approval": T0 + timedelta(days=8),
        "announce": T0 + timedelta(days=9),
    }
    records = []
    for action, at in times.items():
        result = apply_action(s, action, now=at, context=notice_ctx)
        records.append(result.step_record)
        if action != "announce":
            assert result.events == ()
            assert result.new_state.status == C
        s = result.new_state
        if action == "public_notice":
            assert s.notice_started_at == at
            assert s.notice_ends_at == at + timedelta(days=5)
        if action == "township_review":
            assert s.notice_started_at is None and s.notice_ends_at is None
    assert s.status == R and s.procedure is None and s.identified_year == 2020
    assert result.events == (EVENT_STATUS_CHANGED,)
    assert [r.procedure for r in records] == [ID] * 6
    assert records[-1].outcome == "registered"


def test_register_shortcut_for_admin_mid_procedure():
    result = apply_action(
        state(C, ID, "public_notice"), "register", now=T0 + timedelta(days=1), context=ctx(privileged=True)
    )
    assert result.new_state.status == R
    assert result.new_state.notice_started_at is None
    assert result.new_state.identified_year == 2020
    assert "privileged" in result.step_record.note
    assert result.events == (EVENT_STATUS_CHANGED,)


def test_register_refused_without_admin():
    with pytest.raises(PrivilegeRequired) as exc:
        apply_action(state(C), "register", now=T0, context=ctx())
    assert exc.value.allowed_actions == ["apply", "remove"]
    assert "admin" in str(exc.value)


def test_reject_identification_needs_reason():
    with pytest.raises(ReasonRequired):
        apply_action(state(C, ID, "apply"), "reject_identification", now=T0, context=ctx())
    result = apply_action(
        state(C, ID, "apply"), "reject_identification", now=T0, context=ctx(reason="income above line")
    )
    assert result.new_state == state(C)
    assert result.step_record.reason == "income above line"


# ---------------------------------------------------------------- notice period


@pytest.mark.parametrize(
    ("name", "action"),
    [("id_notice", "township_review"), ("registered_exit_proposed", "approve_exit"),
     ("returned_exit_proposed", "approve_exit")],
)  # fmt: skip
def test_notice_period_boundaries(name, action):
    s, _ = VARIANTS[name]
    end = T0 + DEFAULT_NOTICE_PERIOD
    c = ctx(exit_readiness=READY)
    for too_early in (T0, end - timedelta(microseconds=1), end - timedelta(days=1)):
        with pytest.raises(NoticePeriodNotElapsed) as exc:
            apply_action(s, action, now=too_early, context=c)
        assert exc.value.until == end
        assert end.isoformat() in str(exc.value)
    for on_or_after in (end, end + timedelta(microseconds=1), end + timedelta(days=30)):
        after = apply_action(s, action, now=on_or_after, context=c).new_state
        assert after.step != s.step
        assert after.notice_started_at is None and after.notice_ends_at is None


def test_notice_period_fixed_when_it_started():
    started = apply_action(
        state(C, ID, "village_review"), "public_notice", now=T0, context=ctx(notice_period=timedelta(days=3))
    ).new_state
    # a later call with the default period does not lengthen the running notice
    at_three_days = T0 + timedelta(days=3)
    assert apply_action(started, "township_review", now=at_three_days, context=ctx()).new_state.step == "township_review"
    with pytest.raises(NoticePeriodNotElapsed):
        apply_action(started, "township_review", now=at_three_days - timedelta(seconds=1), context=ctx())


def test_notice_end_derived_when_only_start_stored():
    s = state(R, EX, "propose_exit")  # notice_ends_at not stored
    assert s.notice_ends_at is None
    with pytest.raises(NoticePeriodNotElapsed) as exc:
        apply_action(s, "approve_exit", now=T0 + timedelta(days=2), context=ctx(notice_period=timedelta(days=3)))
    assert exc.value.until == T0 + timedelta(days=3)


def test_notice_period_comparison_across_time_zones():
    s = state(C, ID, "public_notice")
    end_utc = (T0 + DEFAULT_NOTICE_PERIOD).astimezone(timezone.utc)
    with pytest.raises(NoticePeriodNotElapsed):
        apply_action(s, "township_review", now=end_utc - timedelta(seconds=1), context=ctx())
    apply_action(s, "township_review", now=end_utc, context=ctx())


# ---------------------------------------------------------------- exit


def test_propose_exit_needs_readiness():
    with pytest.raises(MissingExitReadiness):
        apply_action(state(R), "propose_exit", now=T0, context=ctx())


def test_propose_exit_starts_notice():
    result = apply_action(state(R), "propose_exit", now=T0, context=ctx(exit_readiness=READY))
    s = result.new_state
    assert (s.status, s.procedure, s.step) == (R, EX, "propose_exit")
    assert s.notice_started_at == T0 and s.notice_ends_at == T0 + DEFAULT_NOTICE_PERIOD
    assert result.events == ()
    assert result.step_record.outcome == "exit_proposed"


def test_propose_exit_refused_with_unmet_criteria():
    with pytest.raises(ExitNotReady) as exc:
        apply_action(state(R), "propose_exit", now=T0, context=ctx(exit_readiness=NOT_READY))
    assert exc.value.unmet == ["income_above_line", "housing_safety"]
    assert exc.value.overridable


def test_not_ready_without_listed_criteria_still_refused():
    with pytest.raises(ExitNotReady) as exc:
        apply_action(state(R), "propose_exit", now=T0, context=ctx(exit_readiness=ExitReadiness(False)))
    assert exc.value.unmet == ["exit_readiness"]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_override_needs_reason(reason):
    with pytest.raises(ReasonRequired):
        apply_action(
            state(R), "propose_exit", now=T0,
            context=ctx(exit_readiness=NOT_READY, override=True, reason=reason),
        )  # fmt: skip


def test_override_recorded():
    result = apply_action(
        state(RT, exit_date=date(2018, 12, 1)), "propose_exit", now=T0,
        context=ctx(exit_readiness=NOT_READY, override=True, reason="  income verified by bank records "),
    )  # fmt: skip
    rec = result.step_record
    assert rec.override is True
    assert rec.overridden_criteria == ("income_above_line", "housing_safety")
    assert rec.reason == "income verified by bank records"
    d = rec.to_dict()
    assert {"action", "actor", "at", "outcome", "reason", "note", "override"} <= d.keys()
    assert d["override"] is True and d["at"] == T0.isoformat()
    assert d["overridden_criteria"] == ["income_above_line", "housing_safety"]


def test_override_not_recorded_when_not_needed():
    result = apply_action(
        state(R), "propose_exit", now=T0, context=ctx(exit_readiness=READY, override=True, reason="x")
    )
    assert result.step_record.override is False
    assert result.step_record.overridden_criteria == ()


@pytest.mark.parametrize("readiness", [READY, NOT_READY])
def test_relocated_not_moved_in_cannot_exit_even_with_override(readiness):
    c = ctx(exit_readiness=readiness, override=True, reason="pressure from above", relocated=True, moved_in=False)
    with pytest.raises(RelocationNotMovedIn) as exc:
        apply_action(state(R), "propose_exit", now=T0, context=c)
    assert isinstance(exc.value, ExitNotReady)
    assert exc.value.overridable is False
    assert RELOCATION_NOT_MOVED_IN in exc.value.unmet


def test_relocation_criterion_from_assessment_cannot_be_overridden():
    readiness = ExitReadiness(False, (RELOCATION_NOT_MOVED_IN,))
    with pytest.raises(RelocationNotMovedIn):
        apply_action(
            state(R), "propose_exit", now=T0, context=ctx(exit_readiness=readiness, override=True, reason="x")
        )


def test_relocated_and_moved_in_may_exit():
    c = ctx(exit_readiness=READY, relocated=True, moved_in=True)
    s = apply_action(state(R), "propose_exit", now=T0, context=c).new_state
    assert apply_action(s, "approve_exit", now=AFTER_NOTICE, context=c).new_state.status == E


def test_approve_exit_rechecks_relocation_and_given_readiness():
    s = state(R, EX, "propose_exit")
    with pytest.raises(RelocationNotMovedIn):
        apply_action(s, "approve_exit", now=AFTER_NOTICE, context=ctx(relocated=True))
    with pytest.raises(ExitNotReady):
        apply_action(s, "approve_exit", now=AFTER_NOTICE, context=ctx(exit_readiness=NOT_READY))
    ok = apply_action(
        s, "approve_exit", now=AFTER_NOTICE,
        context=ctx(exit_readiness=NOT_READY, override=True, reason="stale assessment"),
    )  # fmt: skip
    assert ok.step_record.override is True
    # without an assessment, approval relies on the one checked at proposal
    assert apply_action(s, "approve_exit", now=AFTER_NOTICE, context=ctx()).new_state.status == E


def test_approve_exit_sets_exit_date_in_local_time():
    s = state(R, EX, "propose_exit")
    late_utc = datetime(2020, 6, 30, 17, 0, tzinfo=timezone.utc)  # 2020-07-01 01:00 in China
    assert apply_action(s, "approve_exit", now=late_utc, context=ctx()).new_state.exit_date == date(2020, 6, 30)
    late_cst = late_utc.astimezone(CST)
    result = apply_action(s, "approve_exit", now=late_cst, context=ctx())
    assert result.new_state.exit_date == date(2020, 7, 1)
    assert result.new_state.notice_started_at is None
    assert result.events == (EVENT_STATUS_CHANGED,)


@pytest.mark.parametrize("action", ["reject_exit", "withdraw_exit"])
def test_abandoning_exit_goes_back_and_needs_reason(action):
    s = state(RT, EX, "propose_exit", exit_date=date(2018, 12, 1))
    with pytest.raises(ReasonRequired):
        apply_action(s, action, now=T0, context=ctx())
    result = apply_action(s, action, now=T0, context=ctx(reason="objection upheld during notice"))
    assert result.new_state == state(RT, exit_date=date(2018, 12, 1))
    assert result.events == ()


# ---------------------------------------------------------------- return, monitoring, removal


def test_exit_return_and_exit_again():
    s = state(R)
    s = apply_action(s, "propose_exit", now=T0, context=ctx(exit_readiness=READY)).new_state
    s = apply_action(s, "approve_exit", now=AFTER_NOTICE, context=ctx()).new_state
    first_exit = s.exit_date
    s = apply_action(s, "start_monitoring", now=AFTER_NOTICE, context=ctx()).new_state
    assert s.status == M and s.exit_date == first_exit
    s = apply_action(s, "return_to_poverty", now=AFTER_NOTICE, context=ctx(reason="serious illness")).new_state
    assert s.status == RT and s.exit_date == first_exit
    later = datetime(2021, 3, 1, 9, tzinfo=CST)
    s = apply_action(s, "propose_exit", now=later, context=ctx(exit_readiness=READY)).new_state
    s = apply_action(s, "approve_exit", now=later + timedelta(days=8), context=ctx()).new_state
    assert s.status == E and s.exit_date == date(2021, 3, 9)


def test_end_monitoring_returns_to_where_household_came_from():
    after_exit = state(M, exit_date=date(2019, 12, 1))
    assert apply_action(after_exit, "end_monitoring", now=T0, context=ctx()).new_state.status == E
    marginal = state(M, flags={"marginal"})
    back = apply_action(marginal, "end_monitoring", now=T0, context=ctx()).new_state
    assert back.status == C and back.flags == frozenset({"marginal"})


def test_start_monitoring_of_candidate_needs_marginal_category():
    with pytest.raises(IllegalTransition):
        apply_action(state(C), "start_monitoring", now=T0, context=ctx())
    assert apply_action(state(C, flags={"marginal"}), "start_monitoring", now=T0, context=ctx()).new_state.status == M


@pytest.mark.parametrize("reason", [None, "", "  \t"])
@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "removed"])
def test_remove_requires_reason(name, reason):
    with pytest.raises(ReasonRequired) as exc:
        apply_action(VARIANTS[name][0], "remove", now=T0, context=ctx(reason=reason, privileged=True))
    assert exc.value.action == "remove"


def test_remove_mid_procedure_clears_it_and_publishes_removed():
    result = apply_action(
        state(R, EX, "propose_exit"), "remove", now=T0, context=ctx(reason="household emigrated abroad")
    )
    s = result.new_state
    assert (s.status, s.procedure, s.step, s.notice_started_at) == (X, None, None, None)
    assert result.events == (EVENT_STATUS_CHANGED, EVENT_REMOVED)
    assert result.step_record.reason == "household emigrated abroad"
    assert result.step_record.procedure == EX


# ---------------------------------------------------------------- inputs


def test_naive_now_rejected():
    with pytest.raises(ValueError):
        apply_action(state(C), "apply", now=datetime(2020, 6, 1, 9), context=ctx())


def test_state_validation():
    assert ProcedureState(status="candidate").status is Status.CANDIDATE
    with pytest.raises(ValueError):
        ProcedureState(status="registered", procedure="identification", step="apply")
    with pytest.raises(ValueError):
        ProcedureState(status="candidate", procedure="identification", step="public_notice")  # no notice start
    with pytest.raises(ValueError):
        ProcedureState(status="unknown")
    with pytest.raises(ValueError):
        state(C, ID, "public_notice", notice_started_at=datetime(2020, 6, 1))
    with pytest.raises(FrozenInstanceError):
        state(C).status = R  # type: ignore[misc]


def test_context_validation():
    with pytest.raises(ValueError):
        TransitionContext(actor=" ")
    with pytest.raises(ValueError):
        TransitionContext(actor="a", notice_period=timedelta(days=-1))


def test_exit_readiness_from_assessment():
    r = ExitReadiness.from_assessment({"kind": "exit_readiness", "result": False, "unmet": ["housing_safety"]})
    assert r == ExitReadiness(False, ("housing_safety",))
    with pytest.raises(ValueError):
        ExitReadiness.from_assessment({"kind": "monitoring_risk", "result": True, "unmet": []})


def test_position_str():
    assert str(Position(C, ID, "apply")) == "candidate (identification: apply)"


# ---------------------------------------------------------------- random walks


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=30), st.booleans(), st.booleans())
def test_random_walks_stay_in_reachable_positions(choices, privileged, marginal):
    s = state(C, flags={"marginal"} if marginal else ())
    now = T0
    for choice in choices:
        allowed = allowed_actions(s, privileged=privileged)
        if not allowed:
            assert s.status == X
            break
        action = allowed[choice % len(allowed)]
        now = now + DEFAULT_NOTICE_PERIOD
        result = apply_action(s, action, now=now, context=satisfying_context(privileged))
        s = result.new_state
        assert s.position in POSITIONS
        assert (EVENT_STATUS_CHANGED in result.events) == (result.step_record.from_status != s.status)
        if s.status == E:
            assert s.exit_date is not None
        if s.status in (R, E, M, RT) and not (s.status == M and s.exit_date is None):
            assert s.identified_year is not None
