"""Keeps each household's current entitlements and assessments, and their history.

Recomputing compares each new evaluation with what is stored and, for each
difference, writes a history row; a household version that changes anything stages
one ``entitlements.decided`` event in the outbox listing every entitlement and
assessment it granted, changed or revoked (each history row names that event), all in
the caller's transaction. One code path serves a single household (registry events)
and a whole batch (village fan-out, bulk recompute jobs): the current rows of the
batch are read with one query per table, the diff is pure (`diff_household`), and
the writes go out as a handful of multi-row statements. A household whose stored
rows already equal the new evaluation is not written at all, so a no-change bulk run
costs reads only.
"""
from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence

from sqlalchemy import delete, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.policy import PackRegistry
from services.benefits.monitoring.service import Trigger, load_histories, needs_history, risk_detected_event
from services.benefits.tables import assessments, entitlement_history, entitlements, household_snapshots, outbox
from shared.config import TOPIC_BENEFITS
from shared.events import Envelope, utcnow
from shared.money import format_yuan
from shared.outbox import lane_of, signed_payload

#: Keeps each IN (...) list and multi-row statement well under driver parameter limits.
_CHUNK = 500


def evaluation_as_json(household: dict, as_of: date, packs: PackRegistry | None = None,
                       income_history=None) -> dict:
    """``evaluate(...).model_dump(mode="json")``, built without a pydantic object per condition
    (``engine.evaluate_json``; the recompute jobs and the consumer spent about 40 % of their time there)."""
    from services.benefits.engine import evaluate_json
    return evaluate_json(household, as_of, packs, income_history)


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


def area_code_of(snapshot: dict) -> str:
    """The most specific administrative code of a household: its village, else its county."""
    return (snapshot.get("village") or {}).get("code") or snapshot["region_code"]


async def current_entitlements(session: AsyncSession, household_id: str) -> list:
    return (await session.execute(select(entitlements).where(entitlements.c.household_id == household_id)
                                  .order_by(entitlements.c.program, entitlements.c.person_key))).all()


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def load_current(session: AsyncSession, household_ids: Sequence[str]) -> tuple[dict[str, list], dict[str, list]]:
    """Stored entitlements and assessments of many households: one query per table (per chunk)."""
    stored_entitlements: dict[str, list] = defaultdict(list)
    stored_assessments: dict[str, list] = defaultdict(list)
    for chunk in _chunks(list(household_ids)):
        for row in (await session.execute(select(entitlements).where(entitlements.c.household_id.in_(chunk)))).all():
            stored_entitlements[row.household_id].append(row)
        for row in (await session.execute(select(assessments).where(assessments.c.household_id.in_(chunk)))).all():
            stored_assessments[row.household_id].append(row)
    return stored_entitlements, stored_assessments


DECIDED = "entitlements.decided"


@dataclass
class HouseholdChanges:
    """What recomputing one household changes: rows to drop, rows to (re)write, decisions.

    ``decisions`` counts the entitlements and assessments granted, changed or revoked (the items the
    version's one ``entitlements.decided`` event lists); ``events`` are the outbox events staged: that
    event, if anything changed, and a ``monitoring.risk_detected`` lead when one is due."""
    household_id: str
    entitlement_deletes: list[tuple[str, str, str]] = field(default_factory=list)  # (household, program, person)
    entitlement_inserts: list[dict] = field(default_factory=list)
    assessment_deletes: list[tuple[str, str]] = field(default_factory=list)  # (household, kind)
    assessment_inserts: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    decisions: int = 0

    @property
    def writes(self) -> bool:
        return bool(self.entitlement_deletes or self.entitlement_inserts or self.assessment_deletes
                    or self.assessment_inserts or self.events)


_ENTITLEMENT_COMPARED = ("person_id", "eligible", "amount", "unit", "period", "household_version", "pack",
                         "pack_version", "explanation", "source", "region_code", "township_code", "area_code")
_ASSESSMENT_COMPARED = ("result", "unmet", "explanation", "source", "household_version")


def _row_changes(stored: dict, new: dict[Any, dict], compared: tuple[str, ...]) -> tuple[list, list[dict]]:
    """Keys whose stored row must go and rows to insert, so the table ends up equal to ``new``;
    a row that is already current is left alone (a no-change recompute writes nothing)."""
    deletes, inserts = [], []
    for key, row in new.items():
        old = stored.get(key)
        if old is not None and all(getattr(old, f) == row[f] for f in compared):
            continue
        if old is not None:
            deletes.append(key)
        inserts.append(row)
    deletes.extend(key for key in stored if key not in new)
    return deletes, inserts


def diff_household(snapshot: dict, evaluation: dict, stored_entitlements: list, stored_assessments: list, *,
                   cause_event_id: str | None, actor: str | None, now: datetime,
                   trigger: Trigger = "registry_change") -> HouseholdChanges:
    """Pure: the decisions and row changes that take the stored state to ``evaluation``.

    ``trigger`` names what made the recompute (a registry change, or a threshold change: a policy
    publication or recompute job) for the automatic monitoring lead (``monitoring.risk_detected``)."""
    household_id, version = snapshot["id"], snapshot["version"]
    village = snapshot.get("village") or {}
    policy = evaluation["policy"]
    changes = HouseholdChanges(household_id)
    actor = actor or "benefits-engine"

    new = {_key(e): e for e in evaluation["entitlements"] if e.get("eligible")}
    stored = {(r.program, r.person_key): r for r in stored_entitlements}
    old = {k: _entitlement_view(r) for k, r in stored.items()}
    decided: list[dict] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if _material(before) == _material(after):
            continue
        change = "granted" if before is None else "revoked" if after is None else "changed"
        decided.append({"program": key[0], "person_id": key[1] or None, "change": change,
                        "before": before, "after": after})
    rows = {key: {"household_id": household_id, "program": e["program"], "person_key": key[1],
                  "person_id": e.get("person_id"), "eligible": True, "amount": Decimal(str(e["amount"])),
                  "unit": e["unit"], "period": e.get("period"), "household_version": version,
                  "pack": policy["pack"], "pack_version": str(policy["version"]), "explanation": e["explanation"],
                  "source": e.get("source") or {}, "region_code": snapshot["region_code"],
                  "township_code": village.get("township_code"), "area_code": area_code_of(snapshot),
                  "updated_at": now} for key, e in new.items()}
    deletes, changes.entitlement_inserts = _row_changes(stored, rows, _ENTITLEMENT_COMPARED)
    changes.entitlement_deletes = [(household_id, program, person_key) for program, person_key in deletes]

    old_assessments = {r.kind: r for r in stored_assessments}
    previous_range = old_assessments.get("monitoring_range")
    lead = risk_detected_event(snapshot, evaluation, None if previous_range is None else previous_range.result,
                               trigger=trigger, actor=actor)
    assessed: list[dict] = []
    assessment_rows = {}
    for item in evaluation["assessments"]:
        kind = item["kind"]
        previous = old_assessments.get(kind)
        if previous is None or previous.result != item["result"] or list(previous.unmet) != list(item["unmet"]):
            before = None if previous is None else {"result": previous.result, "unmet": previous.unmet}
            assessed.append({"kind": kind, "before": before, "after": item})
        assessment_rows[kind] = {"household_id": household_id, "kind": kind, "result": item["result"],
                                 "unmet": item["unmet"], "explanation": item.get("explanation") or [],
                                 "source": item.get("source") or {}, "household_version": version,
                                 "updated_at": now}
    if decided or assessed:  # one event for the whole version; nothing when it changes nothing
        envelope = Envelope(source="benefits", type=DECIDED, subject=f"household/{household_id}", sequence=version,
                            actor=actor, data={"household_id": household_id, "household_version": version,
                                               "policy": policy, "cause_event_id": cause_event_id,
                                               "entitlements": decided, "assessments": assessed})
        changes.events.append(envelope)
        changes.decisions = len(decided) + len(assessed)
        changes.history = [{
            "household_id": household_id, "program": item["program"], "person_id": item["person_id"],
            "change": item["change"], "before": item["before"], "after": item["after"], "household_version": version,
            "pack": policy["pack"], "pack_version": str(policy["version"]), "cause_event_id": cause_event_id,
            "decision_event_id": envelope.id, "at": now} for item in decided]
    if lead is not None:  # after the decision it comes with, in the same transaction
        changes.events.append(lead)
    deletes, changes.assessment_inserts = _row_changes(old_assessments, assessment_rows, _ASSESSMENT_COMPARED)
    changes.assessment_deletes = [(household_id, kind) for kind in deletes]
    return changes


async def stage_events(session: AsyncSession, events: list[tuple[str, Envelope]]) -> None:
    """Stage many decision events in the outbox with multi-row inserts (one wake-up per call)."""
    if not events:
        return
    now = utcnow()
    rows = [{"event_id": envelope.id, "topic": TOPIC_BENEFITS, "key": key, "lane": lane_of(key),
             "payload": signed_payload(session, envelope), "created_at": now, "attempts": 0}
            for key, envelope in events]
    for chunk in _chunks(rows):
        await session.execute(insert(outbox), list(chunk))
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify('jz_outbox', :topic)"), {"topic": TOPIC_BENEFITS})


async def persist_changes(session: AsyncSession, all_changes: list[HouseholdChanges]) -> None:
    """Write the changes of many households with a few multi-row statements."""
    # The household_id IN (...) is redundant but lets SQLite search the primary key instead of
    # scanning the table for the row-value IN.
    columns = entitlements.c
    keys = [key for c in all_changes for key in c.entitlement_deletes]
    for chunk in _chunks(keys):
        await session.execute(delete(entitlements).where(
            columns.household_id.in_(sorted({key[0] for key in chunk})),
            tuple_(columns.household_id, columns.program, columns.person_key).in_(list(chunk))))
    for chunk in _chunks([row for c in all_changes for row in c.entitlement_inserts]):
        await session.execute(insert(entitlements), list(chunk))
    keys = [key for c in all_changes for key in c.assessment_deletes]
    for chunk in _chunks(keys):
        await session.execute(delete(assessments).where(
            assessments.c.household_id.in_(sorted({key[0] for key in chunk})),
            tuple_(assessments.c.household_id, assessments.c.kind).in_(list(chunk))))
    for chunk in _chunks([row for c in all_changes for row in c.assessment_inserts]):
        await session.execute(insert(assessments), list(chunk))
    for chunk in _chunks([row for c in all_changes for row in c.history]):
        await session.execute(insert(entitlement_history), list(chunk))
    await stage_events(session, [(c.household_id, e) for c in all_changes for e in c.events])


@dataclass
class RecomputeResult:
    """``decisions``: entitlements and assessments granted, changed or revoked (as before one event per
    decision); ``events``: outbox events staged (one ``entitlements.decided`` per changed household
    version, plus any ``monitoring.risk_detected`` leads)."""
    households: int = 0
    households_changed: int = 0
    decisions: int = 0
    events: int = 0


async def recompute_households(session: AsyncSession, snapshots: Sequence[dict], as_of: date, *,
                               cause_event_id: str | None, actor: str | None = None,
                               packs: PackRegistry | None = None,
                               trigger: Trigger = "registry_change",
                               causes: dict[str, tuple[str, str | None]] | None = None) -> RecomputeResult:
    """Evaluate many households and persist what changed, in the caller's transaction.

    ``causes``: household id -> (cause event id, actor) where households of the batch have causes of
    their own (a batch of registry events); the others take ``cause_event_id`` and ``actor``."""
    result = RecomputeResult(households=len(snapshots))
    if not snapshots:
        return result
    stored_entitlements, stored_assessments = await load_current(session, [s["id"] for s in snapshots])
    # Only monitored households are judged for risk elimination, so only theirs is read.
    histories = await load_histories(session, [s["id"] for s in snapshots if needs_history(s)])
    now = utcnow()
    all_changes = []
    for snapshot in snapshots:
        history = histories.get(snapshot["id"], []) if needs_history(snapshot) else None
        evaluation = evaluation_as_json(snapshot, as_of, packs, history)
        cause, by = (causes or {}).get(snapshot["id"], (cause_event_id, actor))
        changes = diff_household(snapshot, evaluation, stored_entitlements.get(snapshot["id"], []),
                                 stored_assessments.get(snapshot["id"], []),
                                 cause_event_id=cause, actor=by, now=now, trigger=trigger)
        if changes.writes:
            all_changes.append(changes)
            result.households_changed += bool(changes.events)
            result.decisions += changes.decisions
            result.events += len(changes.events)
    await persist_changes(session, all_changes)
    return result


async def recompute_household(session: AsyncSession, snapshot: dict, as_of: date, *,
                              cause_event_id: str | None, actor: str | None = None,
                              packs: PackRegistry | None = None) -> int:
    """Evaluate the household and persist what changed; returns the number of decisions."""
    result = await recompute_households(session, [snapshot], as_of, cause_event_id=cause_event_id,
                                        actor=actor, packs=packs)
    return result.decisions


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


# --- the office list: GET /v1/entitlements?program=&area=&cursor= ----------------------------------

class BadCursor(ValueError):
    pass


def encode_cursor(row) -> str:
    raw = json.dumps([row.household_id, row.program, row.person_key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
            raise ValueError
        return value[0], value[1], value[2]
    except ValueError as exc:
        raise BadCursor("cursor is not one this service issued") from exc


async def entitlements_page(session: AsyncSession, *, program: str | None, area: str | None,
                            cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Current entitlements in (household, programme, person) order, keyset-paginated."""
    query = select(entitlements).order_by(entitlements.c.household_id, entitlements.c.program,
                                          entitlements.c.person_key).limit(limit + 1)
    if program:
        query = query.where(entitlements.c.program == program)
    if area:
        query = query.where(entitlements.c.area_code.like(f"{area}%"))
    if cursor:
        query = query.where(tuple_(entitlements.c.household_id, entitlements.c.program, entitlements.c.person_key)
                            > tuple_(*decode_cursor(cursor)))
    rows = (await session.execute(query)).all()
    items = [{"household_id": r.household_id, "household_version": r.household_version,
              "area_code": r.area_code, "township_code": r.township_code, "region_code": r.region_code,
              **{k: v for k, v in _entitlement_view(r).items() if k != "explanation"},
              "pack": r.pack, "pack_version": r.pack_version, "updated_at": r.updated_at.isoformat()}
             for r in rows[:limit]]
    return items, (encode_cursor(rows[limit - 1]) if len(rows) > limit else None)
