"""Keeps each household's current entitlements and assessments, and their history.

Recomputing a household compares the new evaluation with what is stored and, for
each difference, writes a history row and stages one decision event in the outbox,
all in the caller's transaction.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.tables import assessments, entitlement_history, entitlements, household_snapshots, outbox
from shared.config import TOPIC_BENEFITS
from shared.events import Envelope, utcnow
from shared.money import format_yuan
from shared.outbox import add_to_outbox


def evaluation_as_json(household: dict, as_of: date) -> dict:
    from services.benefits.engine import evaluate
    return evaluate(household, as_of).model_dump(mode="json")


def _key(item: dict) -> tuple[str, str]:
    return item["program"], item.get("person_id") or ""


def _material(item: dict | None) -> tuple | None:
    """What makes an entitlement change a decision: amount, unit and period."""
    if item is None:
        return None
    return Decimal(str(item["amount"])), item["unit"], item.get("period")


def _entitlement_view(row) -> dict:
    return {"program": row.program, "person_id": row.person_id, "eligible": row.eligible,
            "amount": format_yuan(Decimal(row.amount)), "unit": row.unit, "period": row.period,
            "explanation": row.explanation, "source": row.source}


async def current_entitlements(session: AsyncSession, household_id: str) -> list:
    return (await session.execute(select(entitlements).where(entitlements.c.household_id == household_id)
                                  .order_by(entitlements.c.program, entitlements.c.person_key))).all()


async def recompute_household(session: AsyncSession, snapshot: dict, as_of: date, *,
                              cause_event_id: str | None, actor: str | None = None) -> int:
    """Evaluate the household and persist what changed; returns the number of decisions."""
    evaluation = evaluation_as_json(snapshot, as_of)
    household_id, version = snapshot["id"], snapshot["version"]
    village = snapshot.get("village") or {}
    policy = evaluation["policy"]
    new = {_key(e): e for e in evaluation["entitlements"] if e.get("eligible")}
    old_rows = {(r.program, r.person_key): r for r in await current_entitlements(session, household_id)}
    old = {k: _entitlement_view(r) for k, r in old_rows.items()}
    now = utcnow()
    decisions = 0
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if _material(before) == _material(after):
            continue
        change = "granted" if before is None else "revoked" if after is None else "changed"
        await _decide(session, f"entitlement.{change}", household_id, version, policy, key,
                      before, after, cause_event_id, actor, now, change)
        decisions += 1
    await session.execute(delete(entitlements).where(entitlements.c.household_id == household_id))
    if new:
        await session.execute(insert(entitlements), [{
            "household_id": household_id, "program": e["program"], "person_key": e.get("person_id") or "",
            "person_id": e.get("person_id"), "eligible": True, "amount": Decimal(str(e["amount"])),
            "unit": e["unit"], "period": e.get("period"), "household_version": version,
            "pack": policy["pack"], "pack_version": str(policy["version"]), "explanation": e["explanation"],
            "source": e.get("source") or {}, "region_code": snapshot["region_code"],
            "township_code": village.get("township_code"), "updated_at": now} for e in new.values()])
    decisions += await _store_assessments(session, snapshot, evaluation, policy, cause_event_id, actor, now)
    return decisions


async def _decide(session, event_type, household_id, version, policy, key, before, after,
                  cause_event_id, actor, now, change) -> None:
    data = {"household_id": household_id, "household_version": version, "program": key[0],
            "person_id": key[1] or None, "change": change, "before": before, "after": after,
            "policy": policy, "cause_event_id": cause_event_id}
    envelope = Envelope(source="benefits", type=event_type, subject=f"household/{household_id}",
                        sequence=version, data=data, actor=actor or "benefits-engine")
    await add_to_outbox(session, outbox, TOPIC_BENEFITS, household_id, envelope)
    await session.execute(insert(entitlement_history).values(
        household_id=household_id, program=key[0], person_id=key[1] or None, change=change,
        before=before, after=after, household_version=version, pack=policy["pack"],
        pack_version=str(policy["version"]), cause_event_id=cause_event_id, decision_event_id=envelope.id,
        at=now))


async def _store_assessments(session, snapshot, evaluation, policy, cause_event_id, actor, now) -> int:
    household_id, version = snapshot["id"], snapshot["version"]
    old = {r.kind: r for r in (await session.execute(
        select(assessments).where(assessments.c.household_id == household_id))).all()}
    decisions = 0
    rows = []
    for item in evaluation["assessments"]:
        kind = item["kind"]
        previous = old.get(kind)
        if previous is None or previous.result != item["result"] or list(previous.unmet) != list(item["unmet"]):
            before = None if previous is None else {"result": previous.result, "unmet": previous.unmet}
            envelope = Envelope(source="benefits", type="assessment.changed", subject=f"household/{household_id}",
                                sequence=version, actor=actor or "benefits-engine",
                                data={"household_id": household_id, "household_version": version, "kind": kind,
                                      "before": before, "after": item, "policy": policy,
                                      "cause_event_id": cause_event_id})
            await add_to_outbox(session, outbox, TOPIC_BENEFITS, household_id, envelope)
            decisions += 1
        rows.append({"household_id": household_id, "kind": kind, "result": item["result"],
                     "unmet": item["unmet"], "explanation": item.get("explanation") or [],
                     "source": item.get("source") or {}, "household_version": version, "updated_at": now})
    await session.execute(delete(assessments).where(assessments.c.household_id == household_id))
    if rows:
        await session.execute(insert(assessments), rows)
    return decisions


async def household_entitlements(session: AsyncSession, household_id: str) -> dict[str, Any] | None:
    snapshot_row = (await session.execute(select(household_snapshots.c.version, household_snapshots.c.region_code,
                                                 household_snapshots.c.village_code)
                                          .where(household_snapshots.c.household_id == household_id))).first()
    if snapshot_row is None:
        return None
    rows = await current_entitlements(session, household_id)
    assessment_rows = (await session.execute(select(assessments).where(assessments.c.household_id == household_id)
                                             .order_by(assessments.c.kind))).all()
    policy = {"pack": rows[0].pack, "version": rows[0].pack_version} if rows else None
    return {
        "household_id": household_id, "household_version": snapshot_row.version,
        "area_code": snapshot_row.village_code or snapshot_row.region_code, "policy": policy,
        "entitlements": [_entitlement_view(r) for r in rows],
        "assessments": [{"kind": a.kind, "result": a.result, "unmet": a.unmet, "explanation": a.explanation,
                         "source": a.source, "household_version": a.household_version} for a in assessment_rows],
    }


async def entitlement_history_page(session: AsyncSession, household_id: str, cursor: int | None,
                                   limit: int) -> tuple[list[dict], int | None]:
    query = (select(entitlement_history).where(entitlement_history.c.household_id == household_id)
             .order_by(entitlement_history.c.id).limit(limit + 1))
    if cursor:
        query = query.where(entitlement_history.c.id > cursor)
    rows = (await session.execute(query)).all()
    items = [{"id": r.id, "program": r.program, "person_id": r.person_id, "change": r.change, "before": r.before,
              "after": r.after, "household_version": r.household_version, "pack": r.pack,
              "pack_version": r.pack_version, "cause_event_id": r.cause_event_id,
              "decision_event_id": r.decision_event_id, "at": r.at.isoformat()} for r in rows[:limit]]
    return items, (rows[limit - 1].id if len(rows) > limit else None)
