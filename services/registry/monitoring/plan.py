"""The assistance plan (帮扶计划) of a monitoring object: its measures, the checks on them, and the
entitlements benefits computes for the household.

The checks are pure (``plan_checks``): every risk cause has a measure that is not cancelled
(``uncovered_risk_causes``), and a household where no living member can work (labour capacity full, skilled
or weak) has a 低保 / 特困 safety-net measure (``safety_net_required`` … ``safety_net_missing``). Benefits'
current entitlements are read over HTTP with the caller's own token (services/registry/peers.py, as the case
file does); when they cannot be had the part is ``null`` with a note saying why.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.households.service import load_household
from services.registry.monitoring.machine import INACTIVE_MEASURE_STATUSES
from services.registry.monitoring.objects import SAFETY_NET_MEASURES, get_object
from services.registry.monitoring.records import labour_capacity
from services.registry.peers import Peers
from shared.auth import Principal


def plan_checks(risk_causes: list[str], measures: list[dict], snapshot: dict) -> dict[str, Any]:
    active = [m for m in measures if m.get("status") not in INACTIVE_MEASURE_STATUSES]
    covered = {m.get("risk_cause") for m in active}
    uncovered = [cause for cause in risk_causes if cause not in covered]
    capacity = labour_capacity(snapshot)
    safety_net_required = capacity == "no_labour"
    safety_net_present = any(m.get("type") in SAFETY_NET_MEASURES for m in active)
    problems = []
    if uncovered:
        problems.append("uncovered_risk_causes")
    if safety_net_required and not safety_net_present:
        problems.append("safety_net_missing")
    if not active:
        problems.append("no_measures")
    return {"ok": not problems, "problems": problems, "uncovered_risk_causes": uncovered,
            "labour_capacity": capacity, "safety_net_required": safety_net_required,
            "safety_net_present": safety_net_present, "active_measures": len(active)}


async def read_plan(session: AsyncSession, peers: Peers, object_id: str, principal: Principal,
                    authorization: str | None) -> dict[str, Any]:
    body = await get_object(session, object_id, principal)
    snapshot = await load_household(session, body["household_id"], principal)
    answer = await peers.benefits.get(
        "entitlements", f"/v1/households/{body['household_id']}/entitlements", authorization=authorization,
        scope="benefits:read",
        not_found_en="benefits has not processed this household yet (its registration event is still on its way) "
                     "or it is outside your area.",
        not_found_zh="政策计算服务尚未处理该户（登记事件仍在途中），或该户不在你的辖区。")
    entitlements = None
    if answer.body is not None:
        entitlements = {"household_version": answer.body.get("household_version"),
                        "items": [e for e in answer.body.get("entitlements") or [] if e.get("eligible")],
                        "assessments": answer.body.get("assessments") or []}
    return {"object_id": body["id"], "household_id": body["household_id"], "case_no": body["case_no"],
            "category": body["category"], "status": body["status"], "risk_causes": body["risk_causes"],
            "measures": body["measures"], "checks": plan_checks(body["risk_causes"], body["measures"], snapshot),
            "entitlements": entitlements, "notes": [answer.note] if answer.note else []}
