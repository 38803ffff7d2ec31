"""The monitoring procedures' pure machine: every step legal in order and illegal out of order, the notice
period, separation of duties, the elimination guard, dismissal and withdrawal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.registry.monitoring.machine import (
    MEASURE_STATUSES, MEASURE_TRANSITIONS, IllegalMeasureStatus, check_measure_status,
    ELIMINATION_STEPS, IDENTIFICATION_STEPS, POSITIONS, EliminationAnswer, EliminationCriteriaNotMet, IllegalStep,
    MissingElimination, NoticeRunning, ObjectState, SeparationOfDuties, StepContext, StepReasonRequired,
    allowed_actions, apply_step)
from services.registry.monitoring.plan import plan_checks

T0 = datetime(2021, 3, 1, 9, tzinfo=timezone(timedelta(hours=8)))
ELIGIBLE = EliminationAnswer(eligible=True, body={"eligible": True, "months_above_range": 7})


def walk(state: ObjectState, steps, now=T0, eligible=ELIGIBLE):
    for index, action in enumerate(steps):
        now += timedelta(days=6)
        state = apply_step(state, action, now=now, context=StepContext(actor=f"a{index % 2}", elimination=eligible,
                                                                        reason="r")).new_state
    return state, now


def opened() -> ObjectState:
    return ObjectState(status="identifying", procedure="identification")


def test_identification_then_elimination_in_order():
    state, now = walk(opened(), IDENTIFICATION_STEPS)
    assert (state.status, state.procedure, state.step) == ("monitored", None, None)
    assert allowed_actions(state) == ["propose_elimination"]
    state, _ = walk(state, ELIMINATION_STEPS, now)
    assert state.status == "eliminated" and allowed_actions(state) == []


@pytest.mark.parametrize("done", range(len(IDENTIFICATION_STEPS)))
def test_every_identification_step_only_after_the_one_before(done):
    state, now = walk(opened(), IDENTIFICATION_STEPS[:done])
    expected = IDENTIFICATION_STEPS[done]
    assert allowed_actions(state) == sorted({"dismiss", expected})
    for action in set(IDENTIFICATION_STEPS) - {expected}:
        with pytest.raises(IllegalStep) as refused:
            apply_step(state, action, now=now + timedelta(days=30), context=StepContext(actor="z"))
        assert expected in refused.value.allowed


def test_notice_period_and_separation_of_duties():
    state, now = walk(opened(), IDENTIFICATION_STEPS[:6])  # through village_notice
    assert state.step == "village_notice" and state.notice_ends_at == now + timedelta(days=5)
    with pytest.raises(NoticeRunning):
        apply_step(state, "township_review", now=now + timedelta(days=4), context=StepContext(actor="other"))
    with pytest.raises(SeparationOfDuties):
        apply_step(state, "township_review", now=now + timedelta(days=6), context=StepContext(actor=state.last_actor))
    reviewed = apply_step(state, "township_review", now=now + timedelta(days=6), context=StepContext(actor="t"))
    assert reviewed.new_state.last_actor == "t"
    with pytest.raises(SeparationOfDuties):
        apply_step(reviewed.new_state, "county_approval", now=now + timedelta(days=7), context=StepContext(actor="t"))


def test_elimination_guard_dismissal_and_withdrawal():
    monitored, now = walk(opened(), IDENTIFICATION_STEPS)
    with pytest.raises(MissingElimination):
        apply_step(monitored, "propose_elimination", now=now, context=StepContext(actor="x"))
    with pytest.raises(EliminationCriteriaNotMet) as refused:
        apply_step(monitored, "propose_elimination", now=now, context=StepContext(
            actor="x", elimination=EliminationAnswer.from_body({"eligible": False, "months_above_range": 3})))
    assert refused.value.answer.body["months_above_range"] == 3
    proposed = apply_step(monitored, "propose_elimination", now=now, context=StepContext(actor="x", elimination=ELIGIBLE))
    with pytest.raises(StepReasonRequired):
        apply_step(proposed.new_state, "withdraw_elimination", now=now, context=StepContext(actor="x"))
    back = apply_step(proposed.new_state, "withdraw_elimination", now=now, context=StepContext(actor="x", reason="收入回落"))
    assert back.new_state.status == "monitored" and back.procedure == "elimination"
    dismissed = apply_step(opened(), "dismiss", now=now, context=StepContext(actor="x", reason="无风险"))
    assert dismissed.new_state.status == "dismissed" and dismissed.transition.event == "monitoring.object_dismissed"
    with pytest.raises(IllegalStep):
        apply_step(dismissed.new_state, "risk_warning", now=now, context=StepContext(actor="x"))
    assert len(POSITIONS) == 9 + 1 + 5 + 2


def test_plan_checks():
    working = {"members": [{"labour_capacity": "full"}]}
    unable = {"members": [{"labour_capacity": "lost"}, {"labour_capacity": "full", "deceased": True}]}
    medical = {"type": "medical", "risk_cause": "illness", "status": "in_progress"}
    assert plan_checks(["illness"], [medical], working)["ok"] is True
    checks = plan_checks(["illness", "accident"], [medical], unable)
    assert checks["uncovered_risk_causes"] == ["accident"] and checks["safety_net_required"] is True
    assert checks["problems"] == ["uncovered_risk_causes", "safety_net_missing"]
    net = {"type": "dibao", "risk_cause": "accident", "status": "planned"}
    assert plan_checks(["illness", "accident"], [medical, net], unable)["ok"] is True
    assert plan_checks(["illness"], [{**medical, "status": "cancelled"}], working)["problems"] == [
        "uncovered_risk_causes", "no_measures"]
    # a completed measure still counts: only cancelled ones do not
    assert plan_checks(["illness"], [{**medical, "status": "completed"}], working)["ok"] is True


@pytest.mark.parametrize("current,wanted,changes", [
    ("planned", "in_progress", True), ("planned", "cancelled", True), ("in_progress", "completed", True),
    ("in_progress", "cancelled", True), ("planned", "planned", False), ("completed", "completed", False)])
def test_measure_status_changes_the_table_allows(current, wanted, changes):
    assert check_measure_status(current, wanted) is changes


@pytest.mark.parametrize("current,wanted,allowed", [
    ("planned", "completed", ["in_progress", "cancelled"]), ("in_progress", "planned", ["completed", "cancelled"]),
    ("completed", "in_progress", []), ("completed", "cancelled", []), ("cancelled", "planned", []),
    ("cancelled", "in_progress", [])])
def test_measure_status_changes_the_table_refuses(current, wanted, allowed):
    with pytest.raises(IllegalMeasureStatus) as refused:
        check_measure_status(current, wanted)
    assert refused.value.allowed == allowed and (refused.value.current, refused.value.wanted) == (current, wanted)
    assert str(refused.value).endswith(f"allowed: {', '.join(allowed) or 'none'}")
    assert set(MEASURE_TRANSITIONS) == set(MEASURE_STATUSES)
