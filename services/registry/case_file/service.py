"""The household's case file (一户一档): one read instead of five calls on three services.

The registry's own parts (snapshot with members, procedure with every step, the latest visits, pairings
with their cadres) come from its database; current entitlements (benefits) and the latest decisions
(audit) are read over HTTP with the caller's own token, concurrently with the local reads and with a
short timeout. A remote part that cannot be had is ``null`` and ``notes`` says why, so a file is always
answered when the registry itself can answer.
"""
from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cadres.service import household_pairings
from services.registry.households.service import load_household, present
from services.registry.monitoring.objects import household_objects
from services.registry.peers import PeerAnswer, Peers, note
from services.registry.tables import cadres
from services.registry.visits.service import list_visits
from services.registry.workflows.service import read_procedure
from shared.auth import Principal

# Bounded pages: the file is an overview; each page's next_cursor continues at the owning endpoint.
VISITS_IN_FILE = 20
DECISIONS_IN_FILE = 20


async def _entitlements(peers: Peers, household_id: str, authorization: str | None) -> PeerAnswer:
    return await peers.benefits.get(
        "entitlements", f"/v1/households/{household_id}/entitlements", authorization=authorization,
        scope="benefits:read",
        not_found_en="benefits has not processed this household yet (its registration event is still on its way) "
                     "or it is outside your area.",
        not_found_zh="政策计算服务尚未处理该户（登记事件仍在途中），或该户不在你的辖区。")


async def _decisions(peers: Peers, household_id: str, authorization: str | None) -> PeerAnswer:
    answer = await peers.audit.get(
        "decisions", "/v1/audit/records", authorization=authorization, scope="audit:read",
        params={"subject": f"household/{household_id}", "order": "desc", "limit": DECISIONS_IN_FILE},
        not_found_en="audit has no record of this household yet (its events are still on their way) "
                     "or it is outside your area.",
        not_found_zh="审计台账尚无该户的记录（事件仍在途中），或该户不在你的辖区。")
    if answer.body is not None:
        # Say where the next (older) page is: the cursor belongs to audit's endpoint, not to the file.
        answer.body = {"order": "newest_first", **answer.body,
                       "continue_at": f"/v1/audit/records?subject=household/{household_id}&order=desc"
                                      f"&cursor={answer.body.get('next_cursor')}"
                                      if answer.body.get("next_cursor") else None}
    return answer


async def _pairings_with_cadres(session: AsyncSession, household_id: str, principal: Principal) -> list[dict]:
    items = await household_pairings(session, household_id, principal)
    ids = sorted({p["cadre_id"] for p in items})
    rows = {r.id: r for r in (await session.execute(select(cadres).where(cadres.c.id.in_(ids)))).all()} if ids else {}
    for pairing in items:
        row = rows.get(pairing["cadre_id"])
        if row is None:
            pairing["cadre"] = None
            continue
        # Who assists the household (name, unit, role) is part of its file, as on its 明白卡; the cadre's
        # phone and area only for a caller who may read that cadre (GET /v1/cadres/{id}'s area rule).
        cadre = {"id": row.id, "name": row.name, "unit": row.unit, "role": row.role}
        if principal.sees_area(row.area_code):
            cadre.update(phone=row.phone, area_code=row.area_code)
        pairing["cadre"] = cadre
    return items


def _monitoring(snapshot: dict, entitlements: dict | None, cases: list[dict]) -> dict:
    """The household's monitoring: its status and category, benefits' risk assessment, and every monitoring
    object it has been (``procedures``, newest case first, each with its steps and measures; ``current``
    is the open one's id)."""
    status, categories = snapshot.get("status"), snapshot.get("categories") or []
    kind = None
    if status == "monitored":
        kind = "marginal" if "marginal" in categories else "exited_under_monitoring"
    risk = None
    if entitlements is not None:
        risk = next((a for a in entitlements.get("assessments") or [] if a.get("kind") == "monitoring_risk"), None)
    current = next((c["id"] for c in cases if c["status"] in ("identifying", "monitored", "eliminating")), None)
    return {"monitored": status == "monitored", "kind": kind, "status": status, "exit_date": snapshot.get("exit_date"),
            "marginal": "marginal" in categories, "risk_assessment": risk, "current": current, "procedures": cases}


async def case_file(session: AsyncSession, peers: Peers, household_id: str, principal: Principal,
                    authorization: str | None) -> dict[str, Any]:
    snapshot = await load_household(session, household_id, principal)  # 404 outside the caller's area
    # The remote parts run while the local ones are read.
    remote = asyncio.gather(_entitlements(peers, household_id, authorization),
                            _decisions(peers, household_id, authorization))
    try:
        procedure = await read_procedure(session, household_id, principal)
        visit_items, visits_next = await list_visits(session, household_id, principal, cursor=None,
                                                     limit=VISITS_IN_FILE)
        pairings = await _pairings_with_cadres(session, household_id, principal)
        cases = await household_objects(session, household_id)
    except BaseException:
        remote.cancel()
        raise
    entitlements, decisions = await remote
    notes = [a.note for a in (entitlements, decisions) if a.note is not None]
    if entitlements.body is not None:
        seen = entitlements.body.get("household_version")
        if seen is not None and seen < snapshot["version"]:
            notes.append(note("entitlements", "behind",
                              f"benefits decided on version {seen}; the household is at version {snapshot['version']} "
                              "(the newer change is still on its way).",
                              f"政策计算依据第 {seen} 版；该户已是第 {snapshot['version']} 版（更新仍在途中）。",
                              entitlements_version=seen, household_version=snapshot["version"]))
    return {
        "household": present(snapshot, principal),
        "procedure": procedure,
        "visits": {"items": visit_items, "next_cursor": visits_next},
        "pairings": pairings,
        "entitlements": entitlements.body,
        "decisions": decisions.body,
        "monitoring": _monitoring(snapshot, entitlements.body, cases),
        "notes": notes,
    }
