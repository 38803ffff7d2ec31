"""Appending to and reading the ledger."""
from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Text, and_, cast, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit.ledger.chain import Algorithm, GENESIS_HASH, canonical_order, heads_merkle_root, record_hash
from services.audit.ledger.verify import (ATTESTATION, CHECKPOINT_CHAIN, attest_signatures,  # noqa: F401 - re-exported
                                          signature_check, verify_ledger)
from services.audit.tables import audit_record_households, ledger_records
from shared.events import Envelope, utcnow
from shared.problems import Problem
from shared.signing import (TrustedKeys, ledger_content, ledger_signed_bytes, rfc3339, signer_for,  # noqa: F401
                            trusted_keys)

CHECKPOINT_TYPE = "ledger.checkpoint"


def chain_id_for(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def envelope_record(envelope: Envelope, chain_id: str) -> dict:
    """The hashed content of a ledger record for one event (without seq and hashes).

    Exactly ``shared.signing.ledger_content`` (what the source signed as ``ledger_signature``: data in
    ledger form, birth year and masked numbers only) plus the chain and that signature, so ``verify``
    can re-check every record's origin with the source's public key.
    """
    return {"chain_id": chain_id, **ledger_content(envelope), "signature": envelope.ledger_signature}


async def _head(session: AsyncSession, chain_id: str) -> tuple[int, str]:
    head = (await session.execute(select(ledger_records.c.seq, ledger_records.c.hash)
                                  .where(ledger_records.c.chain_id == chain_id)
                                  .order_by(ledger_records.c.seq.desc()).limit(1))).first()
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)


async def append_records(session: AsyncSession, records: list[dict], chain_id: str,
                         algorithm: Algorithm) -> list[dict]:
    """Append already-built records (in order) to one chain; skips event ids already present.

    One head read and one multi-row insert for the whole batch; the chain is exactly the
    one appending the records one by one would build. Returns the records written, with
    their ``id``.
    """
    if not records:
        return []
    wanted = [r["event_id"] for r in records]
    existing: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        existing |= set((await session.execute(select(ledger_records.c.event_id)
                                               .where(ledger_records.c.event_id.in_(chunk)))).scalars())
    seq, prev_hash = await _head(session, chain_id)
    now = utcnow()
    fresh, seen = [], set()
    for record in records:
        if record["event_id"] in existing or record["event_id"] in seen:
            continue
        seen.add(record["event_id"])
        seq += 1
        record = {**record, "chain_id": chain_id, "seq": seq, "prev_hash": prev_hash}
        record["hash"] = prev_hash = record_hash(prev_hash, record, algorithm)
        fresh.append(record)
    if not fresh:
        return []
    # The unique (chain_id, seq) constraint turns a concurrent append into an error and a retry,
    # never a fork of the chain. ``data`` is stored as its canonical JSON text (keys in sorted order),
    # the very bytes the hash covers: verify hashes that text as it is stored.
    rows = [{**r, "data": canonical_order(r["data"]), "recorded_at": now} for r in fresh]
    if len(fresh) == 1:
        result = await session.execute(insert(ledger_records).values(**rows[0]))
        fresh[0]["id"] = result.inserted_primary_key[0]
    else:
        await session.execute(insert(ledger_records), rows)
        ids = dict((await session.execute(select(ledger_records.c.seq, ledger_records.c.id).where(
            ledger_records.c.chain_id == chain_id, ledger_records.c.seq >= fresh[0]["seq"]))).all())
        for record in fresh:
            record["id"] = ids[record["seq"]]
    return fresh


async def append_event(session: AsyncSession, envelope: Envelope, chain_id: str,
                       algorithm: Algorithm) -> dict | None:
    """Append one event to its chain; None if the event id is already in the ledger."""
    written = await append_records(session, [envelope_record(envelope, chain_id)], chain_id, algorithm)
    return written[0] if written else None


async def append_events(session: AsyncSession, envelopes: Iterable[Envelope], chain_id: str,
                        algorithm: Algorithm) -> list[dict]:
    """Batched ``append_event`` with identical chain semantics (used by bulk loads and the bench)."""
    return await append_records(session, [envelope_record(e, chain_id) for e in envelopes], chain_id, algorithm)


def record_view(row) -> dict[str, Any]:
    return {"id": row.id, "chain_id": row.chain_id, "seq": row.seq, "event_id": row.event_id,
            "source": row.source, "type": row.type, "subject": row.subject, "time": row.time,
            "actor": row.actor, "data": row.data, "signer": row.signer, "signature": row.signature,
            "prev_hash": row.prev_hash, "hash": row.hash}


async def list_records(session: AsyncSession, *, subject: str | None, type_: str | None, since: datetime | None,
                       actor: str | None, cursor: int | None, limit: int, until: datetime | None = None,
                       chain_id: str | None = None, newest_first: bool = False) -> tuple[list[dict], int | None]:
    # newest_first: a household's case file shows its latest decisions without reading the whole history.
    query = select(ledger_records).order_by(ledger_records.c.id.desc() if newest_first else ledger_records.c.id
                                            ).limit(limit + 1)
    if subject:
        query = query.where(ledger_records.c.subject == subject)
    if type_:
        query = query.where(ledger_records.c.type == type_)
    if actor:
        query = query.where(ledger_records.c.actor == actor)
    if chain_id:
        query = query.where(ledger_records.c.chain_id == chain_id)
    if since:
        query = query.where(ledger_records.c.time >= rfc3339(since))
    if until:
        query = query.where(ledger_records.c.time < rfc3339(until))
    if cursor:
        query = query.where(ledger_records.c.id < cursor if newest_first else ledger_records.c.id > cursor)
    rows = (await session.execute(query)).all()
    return [record_view(r) for r in rows[:limit]], (rows[limit - 1].id if len(rows) > limit else None)


# ---------------------------------------------------------------- checkpoints


async def chain_heads(session: AsyncSession, *, exclude: Iterable[str] = ()) -> dict[str, dict]:
    """chain_id -> {seq, hash} of every chain's last record (one indexed probe per chain)."""
    excluded = set(exclude)
    chain_ids = (await session.execute(select(ledger_records.c.chain_id).distinct())).scalars().all()
    heads = {}
    for chain_id in sorted(set(chain_ids) - excluded):
        seq, head_hash = await _head(session, chain_id)
        heads[chain_id] = {"seq": seq, "hash": head_hash}
    return heads


async def create_checkpoint(session: AsyncSession, algorithm: Algorithm, *, actor: str = "audit-checkpointer",
                            event_id: str | None = None, now: datetime | None = None,
                            trigger: str | None = None, heads: dict[str, dict] | None = None,
                            trusted: TrustedKeys | None = None) -> dict | None:
    """Append a ``ledger.checkpoint`` record committing to every chain head (Merkle root).

    ``event_id`` makes it idempotent (the daily scheduler uses one id per day); None if
    that checkpoint already exists. ``trigger`` (startup | shutdown | daily | manual) is kept in
    the record so a reader knows why it was taken. Daily, manual and CLI checkpoints (not the quick ones
    taken at start-up and shutdown) also check every signature since the previous attestation and attest
    how far they checked (``signatures_checked``: see services/audit/ledger/verify.py), with ``trusted``
    (default: the audit settings' keys, and audit's own).
    """
    now = now or utcnow()
    heads = heads if heads is not None else await chain_heads(session, exclude=[CHECKPOINT_CHAIN])
    data = {"algorithm": algorithm, "chain_heads": heads, "chains": len(heads),
            "records": sum(h["seq"] for h in heads.values()), "merkle_root": heads_merkle_root(heads, algorithm),
            "created_at": rfc3339(now), **({"trigger": trigger} if trigger else {})}
    signer = signer_for(session, "audit")  # audit vouches for its own checkpoints like any source
    if trigger not in ("startup", "shutdown"):
        if trusted is None:
            from shared.config import current_settings
            trusted = trusted_keys(current_settings("audit"))
            trusted.trust_own(signer)
        data[ATTESTATION] = await attest_signatures(session, algorithm, heads, trusted)
    record = {"event_id": event_id or f"checkpoint-{uuid.uuid4()}", "source": "audit", "type": CHECKPOINT_TYPE,
              "subject": "ledger", "time": rfc3339(now), "actor": actor, "data": data, "signer": signer.signer}
    record["signature"] = signer.sign(ledger_signed_bytes(record))
    written = await append_records(session, [record], CHECKPOINT_CHAIN, algorithm)
    return written[0] if written else None


async def latest_checkpoint(session: AsyncSession) -> dict | None:
    row = (await session.execute(select(ledger_records).where(ledger_records.c.chain_id == CHECKPOINT_CHAIN)
                                 .order_by(ledger_records.c.seq.desc()).limit(1))).first()
    return record_view(row) if row else None


async def checkpoint_if_changed(session: AsyncSession, algorithm: Algorithm, *, trigger: str,
                                now: datetime | None = None) -> dict | None:
    """A checkpoint taken at start-up or shutdown, unless it would say nothing new: the ledger is empty
    (an all-zero checkpoint before any event commits to nothing) or every chain head is where the
    latest checkpoint already put it. None when skipped."""
    heads = await chain_heads(session, exclude=[CHECKPOINT_CHAIN])
    if not heads:
        return None
    latest = await latest_checkpoint(session)
    if latest is not None and (latest["data"] or {}).get("chain_heads") == heads:
        return None
    return await create_checkpoint(session, algorithm, now=now, trigger=trigger, heads=heads)


async def latest_meaningful_checkpoint(session: AsyncSession, page: int = 50) -> dict[str, Any]:
    """What a reader should be shown as "the latest checkpoint": the newest one that commits to at
    least one record (older ledgers hold all-zero checkpoints taken before any event arrived).

    ``{"checkpoint": record | None, "latest": the newest checkpoint of any kind | None,
    "skipped_empty": how many newer empty-ledger checkpoints were passed over}``; pages backwards,
    never the whole chain at once."""
    latest, skipped, before = None, 0, None
    while True:
        query = (select(ledger_records).where(ledger_records.c.chain_id == CHECKPOINT_CHAIN)
                 .order_by(ledger_records.c.seq.desc()).limit(page))
        if before is not None:
            query = query.where(ledger_records.c.seq < before)
        rows = (await session.execute(query)).all()
        for row in rows:
            record = record_view(row)
            latest = latest or record
            if int((record["data"] or {}).get("records") or 0) > 0:
                return {"checkpoint": record, "latest": latest, "skipped_empty": skipped}
            skipped += 1
        if len(rows) < page:
            return {"checkpoint": None, "latest": latest, "skipped_empty": skipped}
        before = rows[-1].seq


# ---------------------------------------------------------------- verification (services/audit/ledger/verify.py)


# ---------------------------------------------------------------- household history


def _encode_cursor(time: str, record_id: int) -> str:
    return base64.urlsafe_b64encode(f"{time}|{record_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        time, record_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().rsplit("|", 1)
        return time, int(record_id)
    except Exception as exc:  # noqa: BLE001
        raise Problem(400, "Invalid cursor", "The cursor is not one this API returned.") from exc


def decision_summary(record: dict) -> dict[str, Any]:
    """What a supervisor reads first: which decision, by whom, on what basis."""
    data = record.get("data") or {}
    summary: dict[str, Any] = {}
    if record["type"].startswith("monitoring."):
        summary.update(monitoring_summary(record))
    elif record["source"] == "registry":
        household = data.get("household") or {}
        summary.update(status=household.get("status"), version=data.get("version"),
                       exit_date=household.get("exit_date"))
        step = data.get("step")
        if isinstance(step, dict):
            summary["step"] = {k: step.get(k) for k in ("action", "actor", "at", "outcome", "reason", "override",
                                                        "overridden_criteria", "from_status", "to_status")
                               if k in step}
        if data.get("changed_paths"):
            summary["changed_paths"] = data["changed_paths"]
        if isinstance(data.get("visit"), dict):
            summary["visit"] = {k: data["visit"].get(k) for k in ("visit_id", "client_visit_id", "visited_at", "cadre_id")
                                if k in data["visit"]}
    elif record["type"] == "entitlements.decided":
        summary.update(decided_summary(data))
    elif record["type"].startswith("entitlement."):
        before, after = data.get("before") or {}, data.get("after") or {}
        summary.update(program=data.get("program"), person_id=data.get("person_id"),
                       change=data.get("change") or record["type"].split(".", 1)[1],
                       amount_before=before.get("amount"), amount_after=after.get("amount"),
                       unit=(after or before).get("unit"), policy=(data.get("policy") or {}).get("pack"),
                       source=(after or before).get("source"))
    elif record["type"] == "assessment.changed":
        after = data.get("after") or {}
        summary.update(kind=data.get("kind"), result=after.get("result"), unmet=after.get("unmet"),
                       policy=(data.get("policy") or {}).get("pack"))
    return summary


def decided_summary(data: dict) -> dict[str, Any]:
    """One household version's decisions (``entitlements.decided``): programmes, what changed, amounts before
    and after, the assessments' kinds and results, and the policy pack."""
    items = [i for i in data.get("entitlements") or [] if isinstance(i, dict)]
    assessed = [i for i in data.get("assessments") or [] if isinstance(i, dict)]
    entitlements, changes = [], {"granted": 0, "changed": 0, "revoked": 0}
    for item in items:
        before, after = item.get("before") or {}, item.get("after") or {}
        change = item.get("change") or ("granted" if not before else "revoked" if not after else "changed")
        changes[change] = changes.get(change, 0) + 1
        entitlements.append({"program": item.get("program"), "person_id": item.get("person_id"), "change": change,
                             "amount_before": before.get("amount"), "amount_after": after.get("amount"),
                             "unit": (after or before).get("unit"), "source": (after or before).get("source")})
    return {"policy": (data.get("policy") or {}).get("pack"), "household_version": data.get("household_version"),
            "programs": sorted({str(e["program"]) for e in entitlements if e["program"]}), "changes": changes,
            "entitlements": entitlements, "kinds": [a.get("kind") for a in assessed],
            "assessments": [{"kind": a.get("kind"), "result": (a.get("after") or {}).get("result"),
                             "unmet": (a.get("after") or {}).get("unmet")} for a in assessed]}


def _when(value) -> str:
    return str(value)[:10] if value else "?"


def monitoring_summary(record: dict) -> dict[str, Any]:
    """A monitoring step as a supervisor reads it: who, what, when, on what evidence, plus one line."""
    data = record.get("data") or {}
    type_ = record["type"]
    if isinstance(data.get("lead"), dict):
        lead = data["lead"]
        out = {"lead_id": lead.get("id"), "channel": lead.get("channel"), "risk_causes": lead.get("risk_causes"),
               "reported_at": lead.get("reported_at"), "recorded_by": lead.get("recorded_by"),
               "status": lead.get("status"), "merged_into": lead.get("merged_into")}
        line = (f"lead {lead.get('id')} ({lead.get('channel')}) reported {_when(lead.get('reported_at'))}, "
                f"recorded by {lead.get('recorded_by') or record.get('actor') or '?'}: {lead.get('status')}"
                + (f", merged into {lead['merged_into']}" if lead.get("merged_into") else ""))
        return {"monitoring": {**out, "line": line}}
    if isinstance(data.get("object"), dict):
        obj = data["object"]
        out = {"object_id": obj.get("id"), "case_no": obj.get("case_no"), "category": obj.get("category"),
               "status": obj.get("status"), "procedure": obj.get("procedure")}
        subject = f"monitoring object {obj.get('id')}" + (f" (case {obj['case_no']})" if obj.get("case_no") else "")
        measures = [m for m in obj.get("measures") or [] if isinstance(m, dict)]
        steps = [s for s in obj.get("steps") or [] if isinstance(s, dict)]
        if type_ == "monitoring.measure_recorded" and measures:
            measure = max(measures, key=lambda m: str(m.get("recorded_at") or ""))
            out["measure"] = {k: measure.get(k) for k in ("id", "type", "risk_cause", "responsible", "start_date",
                                                          "status", "recorded_at", "recorded_by")}
            line = (f"{subject}: measure {measure.get('type')} for {measure.get('risk_cause')}, responsible "
                    f"{measure.get('responsible')}, from {_when(measure.get('start_date'))}, recorded by "
                    f"{measure.get('recorded_by') or record.get('actor') or '?'} "
                    f"on {_when(measure.get('recorded_at'))}")
        elif type_ == "monitoring.measure_updated" and measures:
            measure = max(measures, key=lambda m: str(m.get("updated_at") or ""))  # the one just changed
            out["measure"] = {k: measure.get(k) for k in ("id", "type", "risk_cause", "responsible", "start_date",
                                                          "end_date", "status", "updated_at", "updated_by")}
            line = (f"{subject}: measure {measure.get('id')} ({measure.get('type')} for {measure.get('risk_cause')}) "
                    f"now {measure.get('status')}, responsible {measure.get('responsible')}"
                    + (f", ended {measure['end_date']}" if measure.get("end_date") else "")
                    + f", changed by {measure.get('updated_by') or record.get('actor') or '?'} "
                    f"on {_when(measure.get('updated_at'))}")
        elif steps and type_ != "monitoring.object_opened":
            step = steps[-1]
            evidence = step.get("evidence") if isinstance(step.get("evidence"), dict) else {}
            out["step"] = {k: step.get(k) for k in ("procedure", "step", "actor", "at")}
            out["evidence"] = evidence
            line = (f"{subject}: {step.get('procedure')} step {step.get('step')} by {step.get('actor') or '?'} "
                    f"on {_when(step.get('at'))}; status {obj.get('status')}"
                    + (f"; evidence: {', '.join(sorted(evidence))}" if evidence else ""))
            assessment = evidence.get("benefits_assessment")
            if isinstance(assessment, dict):
                line += (f" (benefits: eligible {assessment.get('eligible')}, "
                         f"{assessment.get('months_above_range')} months above the range)")
        else:
            line = (f"{subject} ({obj.get('category')}) opened {_when(obj.get('opened_at'))} from "
                    f"{', '.join(obj.get('lead_ids') or []) or 'no lead'}, cadre {obj.get('assigned_cadre') or '?'}; "
                    f"status {obj.get('status')}")
        return {"monitoring": {**out, "line": line}}
    if type_ == "monitoring.risk_detected":
        assessment = data.get("assessment") if isinstance(data.get("assessment"), dict) else {}
        return {"monitoring": {"trigger": data.get("trigger"), "risk_causes": data.get("risk_causes"),
                               "result": assessment.get("result"), "unmet": assessment.get("unmet"),
                               "line": f"benefits: inside the monitoring range ({data.get('trigger')}), causes "
                                       f"{', '.join(data.get('risk_causes') or []) or '?'} as of {data.get('as_of')}"}}
    return {}


async def household_history(session: AsyncSession, household_id: str, *, cursor: str | None, limit: int,
                            algorithm: Algorithm) -> tuple[list[dict], str | None]:
    """Every ledger record about the household, in event-time order, each re-hashed on the spot."""
    # Records about the household by subject, and those about its monitoring leads and objects (subject
    # ``monitoring/<id>``) that the projection indexed under it.
    indexed = select(audit_record_households.c.record_id).where(audit_record_households.c.household_id == household_id)
    query = (select(ledger_records).where(or_(ledger_records.c.subject == f"household/{household_id}",
                                              ledger_records.c.id.in_(indexed)))
             .order_by(ledger_records.c.time, ledger_records.c.id).limit(limit + 1))
    if cursor:
        time, record_id = _decode_cursor(cursor)
        query = query.where(or_(ledger_records.c.time > time,
                                and_(ledger_records.c.time == time, ledger_records.c.id > record_id)))
    rows = (await session.execute(query)).all()
    items = []
    for row in rows[:limit]:
        record = record_view(row)
        items.append({"record_id": record["id"], "event_id": record["event_id"], "time": record["time"],
                      "type": record["type"], "source": record["source"], "actor": record["actor"],
                      "chain_id": record["chain_id"], "seq": record["seq"], "hash": record["hash"],
                      "intact": record_hash(record["prev_hash"], record, algorithm) == record["hash"],
                      "decision": decision_summary(record)})
    next_cursor = _encode_cursor(rows[limit - 1].time, rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor
